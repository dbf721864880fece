-- The egc language server for Neovim 0.7 and later.
--
--   require('egress').setup()                      -- runs `egc lsp`
--   require('egress').setup({ cmd = { '/path/to/egc', 'lsp' } })
--
-- Neovim 0.7 (Debian bookworm) has no `vim.lsp.start`, so this uses `vim.lsp.start_client`
-- and `vim.lsp.buf_attach_client` from a FileType autocommand, one client per project root.

local M = {}

local defaults = {
  cmd = { 'egc', 'lsp' },
  -- Files or directories that mark a project root, searched upwards from the file.
  root_markers = { '.git', 'egc.toml' },
  on_attach = nil,
  capabilities = nil,
}

M.config = vim.deepcopy(defaults)
local clients = {} -- root directory -> client id

local function find_root(path)
  local dir = vim.fn.fnamemodify(path, ':p:h')
  for _, marker in ipairs(M.config.root_markers) do
    local found = vim.fn.finddir(marker, dir .. ';')
    if found == '' then
      found = vim.fn.findfile(marker, dir .. ';')
    end
    if found ~= '' then
      return vim.fn.fnamemodify(found, ':p:h:h')
    end
  end
  return dir
end

local function attach(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' then
    return
  end
  local root = find_root(name)
  local id = clients[root]
  if id == nil or vim.lsp.get_client_by_id(id) == nil then
    id = vim.lsp.start_client({
      name = 'egc',
      cmd = M.config.cmd,
      root_dir = root,
      workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
      on_attach = M.config.on_attach,
      capabilities = M.config.capabilities or vim.lsp.protocol.make_client_capabilities(),
    })
    if id == nil then
      vim.notify('egc: could not start ' .. table.concat(M.config.cmd, ' '), vim.log.levels.ERROR)
      return
    end
    clients[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  local group = vim.api.nvim_create_augroup('egress_lsp', { clear = true })
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    pattern = 'egress',
    callback = function(args)
      attach(args.buf)
    end,
  })
  -- Buffers that were already open.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].filetype == 'egress' then
      attach(bufnr)
    end
  end
end

return M
