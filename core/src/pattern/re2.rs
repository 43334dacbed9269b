//! `#regex:` keys mean what they mean in Go's `regexp` (RE2 syntax), which
//! Hotsock matches them with. Rust's `regex` crate reads the same syntax with a
//! few differences that would widen or narrow a token's grants:
//!
//! - Go's Perl classes and word boundaries are ASCII-only: `\d` is `[0-9]`,
//!   `\w` is `[0-9A-Za-z_]`, `\s` is `[\t\n\f\r ]` (no `\v`), and `\b` sits
//!   between an ASCII word character and anything else. The crate's are
//!   Unicode-aware, so `\d` would match `١` and `\w` would match `é`.
//! - Go quotes literal text with `\Q…\E` (the `\E` optional at the end); the
//!   crate has no such syntax.
//! - The crate accepts syntax Go refuses (the `x`, `u` and `R` flags, `\<`,
//!   `\b{start}` and the like, class set operations `&&` `--` `~~`, `\u`
//!   escapes, repetition counts over 1000). A token Go would refuse is refused
//!   here too.
//!
//! [`to_rust`] rewrites a Go pattern into the crate's syntax with Go's
//! meaning. What Go accepts and the crate cannot express (`\C`, octal escapes)
//! stays an invalid pattern: the token is refused, never granted more.

use regex_syntax::ast::{
    self, Assertion, AssertionKind, Ast, ClassPerl, ClassPerlKind, ClassSetBinaryOp, ClassSetItem,
    Flag, FlagsItemKind, GroupKind, HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};

/// Go's limit on a counted repetition (`{n}`, `{n,m}`).
const MAX_REPEAT: u32 = 1000;

/// The crate's spelling of a Go pattern (see the module docs), or why Go's
/// syntax does not allow it.
pub fn to_rust(go: &str) -> Result<String, String> {
    let pattern = unquote(go);
    let parsed = ast::parse::Parser::new()
        .parse(&pattern)
        .map_err(|e| e.kind().to_string())?;
    let edits = ast::visit(&parsed, GoDialect::default())?;
    let mut rust = pattern;
    // Back to front, so earlier spans keep their offsets.
    for (start, end, text) in edits.into_iter().rev() {
        rust.replace_range(start..end, &text);
    }
    Ok(rust)
}

/// Replaces each `\Q…\E` outside a bracketed class by its text, escaped.
fn unquote(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    let mut in_class = false;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let escaped: String = rest.chars().take(2).collect();
            if escaped == "\\Q" && !in_class {
                let quoted = &rest[2..];
                let (text, after) = match quoted.find("\\E") {
                    Some(end) => (&quoted[..end], &quoted[end + 2..]),
                    None => (quoted, ""),
                };
                out.push_str(&regex_syntax::escape(text));
                rest = after;
                continue;
            }
            out.push_str(&escaped);
            rest = &rest[escaped.len()..];
            continue;
        }
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Go's sets for its ASCII-only Perl classes, as bracketed-class contents.
fn ascii_set(kind: &ClassPerlKind) -> &'static str {
    match kind {
        ClassPerlKind::Digit => "0-9",
        ClassPerlKind::Word => "0-9A-Za-z_",
        ClassPerlKind::Space => r"\t\n\x0C\r ",
    }
}

/// Checks a parsed pattern against Go's syntax and collects the edits that
/// give it Go's meaning: (start, end, replacement) byte spans, in order.
#[derive(Default)]
struct GoDialect {
    edits: Vec<(usize, usize, String)>,
}

impl GoDialect {
    fn replace(&mut self, span: &ast::Span, text: String) {
        self.edits.push((span.start.offset, span.end.offset, text));
    }

    fn perl_class(&mut self, class: &ClassPerl, in_brackets: bool) {
        let set = ascii_set(&class.kind);
        let text = match (class.negated, in_brackets) {
            (false, true) => set.to_owned(),
            (false, false) => format!("[{set}]"),
            (true, _) => format!("[^{set}]"),
        };
        self.replace(&class.span, text);
    }

    fn literal(kind: &LiteralKind) -> Result<(), String> {
        match kind {
            LiteralKind::HexFixed(HexLiteralKind::X) | LiteralKind::HexBrace(HexLiteralKind::X) => {
                Ok(())
            }
            LiteralKind::HexFixed(_) | LiteralKind::HexBrace(_) => {
                Err("\\u and \\U escapes are not in Go's syntax (use \\x{…})".into())
            }
            _ => Ok(()),
        }
    }

    fn flags(flags: &ast::Flags) -> Result<(), String> {
        for item in &flags.items {
            if let FlagsItemKind::Flag(flag) = &item.kind {
                match flag {
                    Flag::CaseInsensitive
                    | Flag::MultiLine
                    | Flag::DotMatchesNewLine
                    | Flag::SwapGreed => {}
                    Flag::Unicode | Flag::CRLF | Flag::IgnoreWhitespace => {
                        return Err(format!(
                            "the flag {flag:?} is not in Go's syntax (only i, m, s and U are)"
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    fn assertion(&mut self, assertion: &Assertion) -> Result<(), String> {
        match assertion.kind {
            AssertionKind::StartLine
            | AssertionKind::EndLine
            | AssertionKind::StartText
            | AssertionKind::EndText => Ok(()),
            AssertionKind::WordBoundary => {
                self.replace(&assertion.span, r"(?-u:\b)".into());
                Ok(())
            }
            AssertionKind::NotWordBoundary => {
                self.replace(&assertion.span, r"(?-u:\B)".into());
                Ok(())
            }
            _ => Err("this word boundary is not in Go's syntax (only \\b and \\B are)".into()),
        }
    }
}

impl ast::Visitor for GoDialect {
    type Output = Vec<(usize, usize, String)>;
    type Err = String;

    fn finish(self) -> Result<Self::Output, String> {
        Ok(self.edits)
    }

    fn visit_pre(&mut self, node: &Ast) -> Result<(), String> {
        match node {
            Ast::ClassPerl(class) => self.perl_class(class, false),
            Ast::Assertion(assertion) => self.assertion(assertion)?,
            Ast::Literal(literal) => Self::literal(&literal.kind)?,
            Ast::Flags(set) => Self::flags(&set.flags)?,
            Ast::Group(group) => {
                if let GroupKind::NonCapturing(flags) = &group.kind {
                    Self::flags(flags)?;
                }
            }
            Ast::Repetition(repetition) => {
                if let RepetitionKind::Range(range) = &repetition.op.kind {
                    let most = match range {
                        RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => *n,
                        RepetitionRange::Bounded(m, n) => (*m).max(*n),
                    };
                    if most > MAX_REPEAT {
                        return Err(format!(
                            "a repetition count over {MAX_REPEAT} is not allowed in Go's syntax"
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), String> {
        match item {
            ClassSetItem::Perl(class) => self.perl_class(class, true),
            ClassSetItem::Literal(literal) => Self::literal(&literal.kind)?,
            ClassSetItem::Range(range) => {
                Self::literal(&range.start.kind)?;
                Self::literal(&range.end.kind)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_binary_op_pre(&mut self, _: &ClassSetBinaryOp) -> Result<(), String> {
        Err("class set operations (&&, --, ~~) are not in Go's syntax".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    /// Whether Go's `regexp.MatchString(pattern, name)` would be true: the
    /// expectations are Go's (documented RE2 semantics), row by row.
    const GO_MATCHES: &[(&str, &str, bool)] = &[
        (r"^\d+$", "123", true),
        (r"^\d+$", "١٢٣", false),  // Arabic-Indic digits are no \d in Go
        (r"^\d+$", "１２", false), // nor fullwidth ones
        (r"^\D$", "١", true),
        (r"^[^\d]+$", "١x", true),
        (r"^[\d]+$", "٣", false),
        (r"^[a\D]$", "é", true),
        (r"^\w+$", "chat_1", true),
        (r"^\w+$", "café", false),
        (r"^\w+$", "日本", false),
        (r"^[\w.-]+$", "room-1.a", true),
        (r"^[\w.-]+$", "résumé", false),
        (r"^\W$", "é", true),
        (r"^a\sb$", "a b", true),
        (r"^a\sb$", "a\u{a0}b", false),   // no-break space
        (r"^a\sb$", "a\u{2003}b", false), // em space
        (r"^a\sb$", "a\u{b}b", false),    // Go's \s has no \v
        (r"^a\Sb$", "a\u{a0}b", true),
        (r"\bchat\b", "x.chat.y", true),
        (r"\bchat\b", "échaté", true), // é is no word character in Go
        (r"\Bchat", "échat", false),
        (r"^\pL+$", "café", true), // Unicode classes stay Unicode
        (r"(?i)^chat$", "CHAT", true),
        (r"^\Qa.b*\E$", "a.b*", true),
        (r"^\Qa.b*\E$", "axbb", false),
        (r"^room\Q.1", "room.1", true), // \E may be left off at the end
        (r"^[\Q]$", "\\", false),       // inside a class \Q is no quote (Go refuses it too)
        (r"^chat\.", "chat.1", true),
        (r"^(ab){3}$", "ababab", true),
    ];

    #[test]
    fn perl_classes_and_boundaries_are_ascii_as_in_go() {
        let mut wrong = Vec::new();
        for (go, name, expected) in GO_MATCHES {
            let matched = to_rust(go)
                .ok()
                .and_then(|rust| Regex::new(&rust).ok())
                .map(|r| r.is_match(name));
            let go_valid = !go.contains(r"[\Q");
            match matched {
                Some(m) if m == *expected => {}
                None if !go_valid => {}
                other => wrong.push(format!("{go:?} on {name:?}: {other:?}, Go says {expected}")),
            }
        }
        assert!(wrong.is_empty(), "\n  {}", wrong.join("\n  "));
    }

    #[test]
    fn go_s_largest_repetition_count_is_allowed() {
        let rust = to_rust(r"^a{1000}$").expect("Go allows 1000");
        assert!(Regex::new(&rust).expect("re").is_match(&"a".repeat(1000)));
    }

    #[test]
    fn the_crates_unicode_classes_would_differ_without_the_rewrite() {
        // The table above is not vacuous: the crate alone disagrees with Go.
        assert!(Regex::new(r"^\d+$").expect("re").is_match("١٢٣"));
        assert!(Regex::new(r"^\w+$").expect("re").is_match("café"));
        assert!(Regex::new(r"^a\sb$").expect("re").is_match("a\u{a0}b"));
    }

    #[test]
    fn syntax_go_refuses_is_refused() {
        for go in [
            r"(?x) a",
            r"(?u:a)",
            r"(?R)a",
            r"a{1001}",
            r"a{2,1001}",
            r"\<chat",
            r"\b{start}chat",
            r"[a-z&&[^x]]",
            r"[a-z--x]",
            r"\u0041",
            r"\U{41}",
            r"[\u0041]",
        ] {
            assert!(to_rust(go).is_err(), "{go:?} should be refused");
        }
    }

    #[test]
    fn what_go_accepts_but_the_crate_cannot_express_stays_invalid() {
        // \C (any byte) and octal escapes: a refusal, never a wider grant.
        for go in [r"a\Cb", r"\012"] {
            assert!(to_rust(go).is_err(), "{go:?}");
        }
    }
}
