//! The grammar's atomic rules: literals, keywords, names, strings, numbers, ports,
//! durations and CIDRs. Each skips the trivia before it and, on failure, moves nothing.

use super::*;

impl<'s> Fast<'s> {
    // -----------------------------------------------------------------------------
    // Tokens (atomic rules): each skips trivia first, and on failure moves nothing

    /// A literal such as `{`, `,` or `=`.
    pub(super) fn lit(&mut self, s: u8) -> Option<usize> {
        let m = self.mark();
        let start = self.next_start();
        if self.peek() == s {
            self.pos += 1;
            self.last_end = self.pos;
            Some(start)
        } else {
            self.reset(m);
            None
        }
    }

    /// A keyword rule `k_* = @{ "word" ~ !ident_char }`; returns its start.
    pub(super) fn kw(&mut self, word: &[u8]) -> Option<usize> {
        let m = self.mark();
        let start = self.next_start();
        let end = start + word.len();
        if self.text.get(start..end) == Some(word) && !ident_char(self.peek_at(end)) {
            self.pos = end;
            self.last_end = end;
            Some(start)
        } else {
            self.reset(m);
            None
        }
    }

    /// `k_port = @{ ("ports" | "port") ~ !ident_char }`: the choice commits to `ports`.
    pub(super) fn kw_port(&mut self) -> Option<usize> {
        let m = self.mark();
        let start = self.next_start();
        let rest = self.text.get(start..).unwrap_or(&[]);
        let len = if rest.starts_with(b"ports") {
            5
        } else if rest.starts_with(b"port") {
            4
        } else {
            0
        };
        if len > 0 && !ident_char(self.peek_at(start + len)) {
            self.pos = start + len;
            self.last_end = self.pos;
            Some(start)
        } else {
            self.reset(m);
            None
        }
    }

    /// The end of a run of name characters starting at `i`.
    pub(super) fn ident_chars_end(&self, mut i: usize) -> usize {
        while ident_char(self.peek_at(i)) {
            i += 1;
        }
        i
    }

    /// `ident = @{ !reserved ~ ident_start ~ ident_char* }`.
    pub(super) fn ident(&mut self) -> Option<Ident> {
        let m = self.mark();
        let start = self.next_start();
        if !ident_start(self.peek()) {
            self.reset(m);
            return None;
        }
        let end = self.ident_chars_end(start + 1);
        let word = self.text.get(start..end).unwrap_or(&[]);
        if RESERVED.contains(&word) {
            self.reset(m);
            return None;
        }
        self.pos = end;
        self.last_end = end;
        Some(Ident {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }

    /// `qname = @{ ident ~ ("." ~ ident_start ~ ident_char*)* }`.
    pub(super) fn qname(&mut self) -> Option<Ident> {
        let first = self.ident()?;
        let start = self.pos - first.text.len();
        let mut end = self.pos;
        while self.peek_at(end) == b'.' && ident_start(self.peek_at(end + 1)) {
            end = self.ident_chars_end(end + 2);
        }
        if end == self.pos {
            return Some(first);
        }
        self.pos = end;
        self.last_end = end;
        Some(Ident {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }

    /// `star = { "*" }`: its span.
    pub(super) fn star(&mut self) -> Option<Span> {
        let start = self.lit(b'*')?;
        Some(self.span(start, start + 1))
    }

    /// `string = @{ "\"" ~ (("\\" ~ !"\n" ~ ANY) | (!("\"" | "\\" | "\n") ~ ANY))* ~ "\"" }`,
    /// with its escapes resolved as the tree builder does.
    pub(super) fn string(&mut self) -> Option<StrLit> {
        let m = self.mark();
        let start = self.next_start();
        if self.peek() != b'"' {
            self.reset(m);
            return None;
        }
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match self.peek_at(i) {
                _ if i >= self.text.len() => {
                    self.reset(m);
                    return None;
                }
                b'\n' => {
                    self.reset(m);
                    return None;
                }
                b'"' => break,
                b'\\' => {
                    if self.peek_at(i + 1) == b'\n' || i + 1 >= self.text.len() {
                        self.reset(m);
                        return None;
                    }
                    escaped = true;
                    // The escaped character's first byte; a multi-byte character's other
                    // bytes are never `"`, `\` or a newline, so the loop takes them.
                    i += 2;
                }
                _ => i += 1,
            }
        }
        let end = i + 1;
        self.pos = end;
        self.last_end = end;
        let inner = self.str_of(start + 1, i);
        let value = if escaped {
            crate::parser::tree::unescape(inner)
        } else {
            inner.to_string()
        };
        Some(StrLit {
            value,
            span: self.span(start, end),
        })
    }

    pub(super) fn digits_end(&self, mut i: usize) -> usize {
        while self.peek_at(i).is_ascii_digit() {
            i += 1;
        }
        i
    }

    /// `number = @{ ASCII_DIGIT+ ~ !ident_char }`.
    pub(super) fn number(&mut self) -> Option<NumLit> {
        let m = self.mark();
        let start = self.next_start();
        let end = self.digits_end(start);
        if end == start || ident_char(self.peek_at(end)) {
            self.reset(m);
            return None;
        }
        self.pos = end;
        self.last_end = end;
        Some(self.num_lit(start, end))
    }

    pub(super) fn num_lit(&self, start: usize, end: usize) -> NumLit {
        let text = self.str_of(start, end);
        NumLit {
            text: text.to_string(),
            value: text.parse().ok(),
            span: self.span(start, end),
        }
    }

    /// `port_item = _{ port_range | number }`, with
    /// `port_range = @{ ASCII_DIGIT+ ~ "-" ~ ASCII_DIGIT+ ~ !ident_char }`.
    pub(super) fn port_item(&mut self) -> Option<PortLit> {
        let m = self.mark();
        let start = self.next_start();
        let first_end = self.digits_end(start);
        if first_end > start && self.peek_at(first_end) == b'-' {
            let second_end = self.digits_end(first_end + 1);
            if second_end > first_end + 1 && !ident_char(self.peek_at(second_end)) {
                self.pos = second_end;
                self.last_end = second_end;
                return Some(PortLit {
                    start: self.num_lit(start, first_end),
                    end: Some(self.num_lit(first_end + 1, second_end)),
                    span: self.span(start, second_end),
                });
            }
        }
        self.reset(m);
        let number = self.number()?;
        Some(PortLit {
            span: number.span,
            start: number,
            end: None,
        })
    }

    /// `duration = @{ ASCII_DIGIT+ ~ ("s" | "m" | "h" | "d") ~ !ident_char }`.
    pub(super) fn duration(&mut self) -> Option<DurationLit> {
        let m = self.mark();
        let start = self.next_start();
        let digits = self.digits_end(start);
        let end = digits + 1;
        if digits == start
            || !matches!(self.peek_at(digits), b's' | b'm' | b'h' | b'd')
            || ident_char(self.peek_at(end))
        {
            self.reset(m);
            return None;
        }
        self.pos = end;
        self.last_end = end;
        Some(DurationLit {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }

    /// `cidr_lit = @{ (ipv4 | ipv6) ~ ("/" ~ ASCII_DIGIT+)? }`, with
    /// `ipv4 = @{ D+ "." D+ "." D+ "." D+ }` and `ipv6 = @{ HEX* ":" (HEX | ":" | ".")* }`.
    pub(super) fn cidr(&mut self) -> Option<CidrLit> {
        let m = self.mark();
        let start = self.next_start();
        let ipv4 = || {
            let mut i = start;
            for part in 0..4 {
                if part > 0 {
                    if self.peek_at(i) != b'.' {
                        return None;
                    }
                    i += 1;
                }
                let end = self.digits_end(i);
                if end == i {
                    return None;
                }
                i = end;
            }
            Some(i)
        };
        let ipv6 = || {
            let mut i = start;
            while self.peek_at(i).is_ascii_hexdigit() {
                i += 1;
            }
            if self.peek_at(i) != b':' {
                return None;
            }
            i += 1;
            while matches!(self.peek_at(i), b':' | b'.') || self.peek_at(i).is_ascii_hexdigit() {
                i += 1;
            }
            Some(i)
        };
        let Some(mut end) = ipv4().or_else(ipv6) else {
            self.reset(m);
            return None;
        };
        if self.peek_at(end) == b'/' {
            let digits = self.digits_end(end + 1);
            if digits > end + 1 {
                end = digits;
            }
        }
        self.pos = end;
        self.last_end = end;
        Some(CidrLit {
            text: self.str_of(start, end).to_string(),
            span: self.span(start, end),
        })
    }
}
