-- Headless end-to-end test of the Neovim plugin (run by crates/egress-lsp/tests).
--
--   EGRESS_LSP_CMD=/path/to/egc EGRESS_LSP_ARGS=lsp EGRESS_TEST_OUT=/tmp/out.json \
--     nvim --headless -n -i NONE -u editors/nvim/test_init.lua policy.egress
--
-- Loads the plugin from this directory, waits until diagnostics from the server arrive
-- in the buffer, writes them as JSON to EGRESS_TEST_OUT and quits; exits non-zero if none
-- arrive within EGRESS_TEST_TIMEOUT_MS (default 20000).

local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
vim.opt.runtimepath:prepend(here)
vim.cmd('filetype plugin on')
vim.cmd('syntax on')

local out = os.getenv('EGRESS_TEST_OUT')
local cmd = { os.getenv('EGRESS_LSP_CMD') or 'egc' }
local args = os.getenv('EGRESS_LSP_ARGS')
if args == nil then
  table.insert(cmd, 'lsp')
elseif args ~= '' then
  for word in args:gmatch('%S+') do
    table.insert(cmd, word)
  end
end
local timeout = tonumber(os.getenv('EGRESS_TEST_TIMEOUT_MS') or '20000')

require('egress').setup({ cmd = cmd })

local function finish(code, value)
  local file = io.open(out, 'w')
  if file then
    file:write(vim.fn.json_encode(value))
    file:close()
  end
  vim.cmd((code == 0 and 'qa!') or 'cquit! ' .. code)
end

local started = vim.loop.now()
local timer = vim.loop.new_timer()
timer:start(100, 100, vim.schedule_wrap(function()
  local diagnostics = vim.diagnostic.get(0)
  if #diagnostics > 0 then
    timer:stop()
    local result = {
      filetype = vim.bo.filetype,
      syntax = vim.bo.syntax,
      clients = #vim.lsp.buf_get_clients(0),
      diagnostics = {},
    }
    for _, d in ipairs(diagnostics) do
      local code = d.code
      if code == nil and d.user_data and d.user_data.lsp then
        code = d.user_data.lsp.code
      end
      table.insert(result.diagnostics, {
        lnum = d.lnum,
        col = d.col,
        message = d.message,
        severity = d.severity,
        source = d.source,
        code = code,
      })
    end
    finish(0, result)
  elseif vim.loop.now() - started > timeout then
    timer:stop()
    finish(3, {
      error = 'no diagnostics within ' .. timeout .. ' ms',
      filetype = vim.bo.filetype,
      clients = #vim.lsp.buf_get_clients(0),
    })
  end
end))
