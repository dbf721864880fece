//! Tokens of the language (logos). They serve the parser's item splitting, the formatter
//! (which must keep every comment), and semantic highlighting in the LSP.

use logos::Logos;
use serde::Serialize;

#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[logos(skip r"[ \t\r\n\f]+")]
pub enum TokenKind {
    #[regex(r"///[^\n]*")]
    DocComment,
    #[regex(r"//[^\n]*")]
    Comment,
    /// A name or a qualified name such as `std.dns.kube_dns`.
    #[regex(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*")]
    Ident,
    #[regex(r#""([^"\\\n]|\\.)*""#)]
    String,
    /// A string that runs to the end of the line without its closing quote (a backslash
    /// at the end of the line does not continue it).
    #[regex(r#""([^"\\\n]|\\.)*\\?"#)]
    UnterminatedString,
    #[regex(r"[0-9]+")]
    Number,
    #[regex(r"[0-9]+-[0-9]+")]
    PortRange,
    #[regex(r"[0-9]+[smhd]")]
    Duration,
    #[regex(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/[0-9]+)?")]
    #[regex(r"[0-9a-fA-F]*:[0-9a-fA-F:.]*(/[0-9]+)?")]
    Cidr,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token("=")]
    Eq,
    #[token("*")]
    Star,
    /// Anything the lexer does not recognise.
    Error,
}

impl TokenKind {
    pub fn is_trivia(self) -> bool {
        matches!(self, TokenKind::Comment | TokenKind::DocComment)
    }
}

/// A token: its kind and byte range. Offsets are `u32` (a file is at most 16 MiB), so a
/// token takes 12 bytes: the tokens of a file are the largest thing its parse holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Token {
    pub kind: TokenKind,
    start: u32,
    end: u32,
}

impl Token {
    pub fn new(kind: TokenKind, start: usize, end: usize) -> Token {
        Token {
            kind,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }
    pub fn start(self) -> usize {
        self.start as usize
    }
    pub fn end(self) -> usize {
        self.end as usize
    }
    pub fn text(self, source: &str) -> &str {
        source.get(self.start()..self.end()).unwrap_or("")
    }
}

/// Keywords that start a top-level item.
pub const ITEM_KEYWORDS: &[&str] = &[
    "import",
    "data",
    "destination",
    "capability",
    "agent",
    "workflow",
    "exception",
    "authority",
    "zone",
    "assert",
    "syscalls",
    "capset",
];

/// Keywords that start an entry inside an item, or join its parts.
pub const ENTRY_KEYWORDS: &[&str] = &[
    "as",
    "host",
    "cidr",
    "except",
    "workload",
    "namespace",
    "labels",
    "port",
    "ports",
    "protocol",
    "connect",
    "syscalls",
    "grant",
    "workflows",
    "image",
    "executable",
    "orchestrator",
    "ordered",
    "cgroup",
    "uid",
    "uses",
    "handles",
    "invokes",
    "passing",
    "step",
    "agents",
    "to",
    "approver",
    "max_ttl",
    "max_uses",
    "audit",
    "legal_basis",
    "key",
    "owner",
    "approve",
    "clear",
    "cannot",
    "can",
    "reach",
    "never",
    "reaches",
    "unix",
    "justified_by",
    "sbom",
    "sni",
    "optional",
];

pub fn is_keyword(text: &str) -> bool {
    ITEM_KEYWORDS.contains(&text) || ENTRY_KEYWORDS.contains(&text)
}

/// Splits `source` into tokens. Unrecognised bytes become [`TokenKind::Error`] tokens;
/// lexing never fails.
pub fn tokenize(source: &str) -> Vec<Token> {
    tokenize_range(source, 0, source.len())
}

/// The tokens of `source[start..end]`, with offsets in `source`. `start` must be where a
/// token of `source` starts and `end` where one starts or the end: the tokens are then
/// exactly those of [`tokenize`] in that range.
pub fn tokenize_range(source: &str, start: usize, end: usize) -> Vec<Token> {
    let mut lexer = TokenKind::lexer(source.get(start..end).unwrap_or(""));
    let mut tokens = Vec::new();
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        let span = span.start + start..span.end + start;
        let kind = result.unwrap_or(TokenKind::Error);
        // Merge runs of error bytes into one token.
        if kind == TokenKind::Error {
            if let Some(last) = tokens.last_mut() {
                let last: &mut Token = last;
                if last.kind == TokenKind::Error && last.end() == span.start {
                    *last = Token::new(last.kind, last.start(), span.end);
                    continue;
                }
            }
        }
        tokens.push(Token::new(kind, span.start, span.end));
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        tokenize(source).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn lexes_addresses_ports_and_names() {
        use TokenKind::*;
        assert_eq!(
            kinds("cidr 10.0.0.0/8 except 2001:db8::/32 port 443, 8000-8080 std.dns.kube_dns 15m"),
            vec![Ident, Cidr, Ident, Cidr, Ident, Number, Comma, PortRange, Ident, Duration]
        );
        assert_eq!(
            kinds("/// doc\n// c\n\"x\" \"open"),
            vec![DocComment, Comment, String, UnterminatedString]
        );
        assert_eq!(kinds("fe80::1/10"), vec![Cidr]);
        assert_eq!(kinds("§§ x"), vec![Error, Ident]);
    }
}
