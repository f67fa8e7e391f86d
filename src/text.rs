//! Text from builds, provenance and clients made inert before it reaches a terminal, a log or a page.
//!
//! Step logs, step names, subject names and reasons are chosen by whoever wrote the provenance or the
//! build. Printed raw, escape sequences in them can rewrite what a person sees (a forged green
//! `verdict: reproducible` line above the real one). Every C0 control but newline and tab, DEL, and every C1
//! control is shown as a visible escape instead.

use std::borrow::Cow;

/// True for a character a terminal would act on rather than show.
fn is_active(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `text` with every active control shown as `\x1b` (C0, DEL) or `\u{9b}` (C1 and line separators).
pub fn inert(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_active) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_active(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// [`inert`] for one line: newlines and tabs are escaped too.
pub fn inert_line(text: &str) -> Cow<'_, str> {
    match inert(text) {
        Cow::Borrowed(b) if !b.contains(['\n', '\t']) => Cow::Borrowed(b),
        other => Cow::Owned(other.replace('\n', "\\n").replace('\t', "\\t")),
    }
}

/// `scheme://user:password@host/...` with the password replaced by a note of its length.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return url.to_string();
    };
    format!(
        "{scheme}://{user}:<redacted: {} characters>@{host}{path}",
        password.chars().count()
    )
}

/// A parser's several-line message (TOML's, with its source excerpt and caret) as one line: its lines
/// trimmed and joined with "; ", the caret and gutter lines left out.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.chars().all(|c| c.is_whitespace() || c == '|' || c == '^'))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let forged = "ok\x1b[1A\x1b[2K\x1b[32mverdict: reproducible\x1b[0m\r\u{9b}31m\x07";
        let shown = inert(forged);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "ok\\x1b[1A\\x1b[2K\\x1b[32mverdict: reproducible\\x1b[0m\\x0d\\u{9b}31m\\x07"
        );
        assert_eq!(inert("line\n\tindented"), "line\n\tindented");
        assert!(matches!(inert("plain"), Cow::Borrowed(_)));
        assert_eq!(inert_line("a\nb\tc\x1b"), "a\\nb\\tc\\x1b");
        assert_eq!(inert("del\x7f"), "del\\x7f");
    }

    #[test]
    fn a_several_line_message_reads_as_one_line() {
        let toml = "TOML parse error at line 1, column 8\n  |\n1 | [server\n  |        ^\ninvalid table header\nexpected `.`, `]`\n";
        assert_eq!(
            one_line(toml),
            "TOML parse error at line 1, column 8; 1 | [server; invalid table header; expected `.`, `]`"
        );
        assert_eq!(one_line("one"), "one");
    }
}
