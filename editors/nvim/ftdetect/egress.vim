" egc policy files.
autocmd BufRead,BufNewFile *.egress setfiletype egress
