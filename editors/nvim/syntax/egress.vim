" Syntax highlighting for egc policy files (.egress). The language server adds semantic
" highlighting on top when the client supports it.
if exists('b:current_syntax')
  finish
endif

syntax case match

syntax keyword egressItem import data destination capability agent workflow exception authority zone assert syscalls capset
syntax keyword egressEntry as host cidr except workload namespace labels port ports protocol connect grant workflows image executable orchestrator ordered cgroup uid uses handles invokes passing step agents to approver max_ttl max_uses audit legal_basis key owner approve clear unix justified_by sbom sni optional
syntax keyword egressClaim cannot can reach never reaches
syntax keyword egressConstant tcp udp
syntax match egressCapability /\<CAP_[A-Z_]\+\>/
syntax match egressNumber /\<[0-9]\+\(-[0-9]\+\)\?\>/
syntax match egressDuration /\<[0-9]\+[smhd]\>/
syntax match egressAddress /\<[0-9]\+\.[0-9]\+\.[0-9]\+\.[0-9]\+\(\/[0-9]\+\)\?/
syntax match egressAddress /\<[0-9a-fA-F]*::\?[0-9a-fA-F:.]*\(\/[0-9]\+\)\?/
syntax match egressOperator /[=*]/
syntax region egressString start=/"/ skip=/\\./ end=/"\|$/ oneline
syntax match egressComment "//.*$" contains=egressTodo
syntax match egressDocComment "///.*$" contains=egressTodo
syntax keyword egressTodo contained TODO FIXME XXX NOTE

highlight default link egressItem Keyword
highlight default link egressEntry Statement
highlight default link egressClaim Conditional
highlight default link egressConstant Constant
highlight default link egressCapability Constant
highlight default link egressNumber Number
highlight default link egressDuration Number
highlight default link egressAddress Number
highlight default link egressOperator Operator
highlight default link egressString String
highlight default link egressComment Comment
highlight default link egressDocComment SpecialComment
highlight default link egressTodo Todo

let b:current_syntax = 'egress'
