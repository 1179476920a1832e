//! Parsing the comma-separated fields of a response line.
//!
//! The at-commands crate rejects empty parameters (`+CMGR: 0,,25`), which real modems print
//! all the time, so information lines are split here; at-commands builds the commands.

/// Splits `a,"b,c",,d` into `["a", "\"b,c\"", "", "d"]` (quotes kept, fields trimmed).
pub fn parse_fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !s.is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Removes one pair of surrounding double quotes, if present.
pub fn unquote(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t)
        .to_string()
}

/// The part of `line` after `prefix` (e.g. `+CSQ:`), trimmed; None if the prefix is absent.
pub fn after_prefix<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        line.get(prefix.len()..).map(str::trim)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_with_quotes_and_empties() {
        assert_eq!(parse_fields("0,,25"), vec!["0", "", "25"]);
        assert_eq!(
            parse_fields("0,0,\"Kyiv, star\",7"),
            vec!["0", "0", "\"Kyiv, star\"", "7"]
        );
        assert_eq!(parse_fields(""), Vec::<String>::new());
        assert_eq!(unquote("\"SM\""), "SM");
        assert_eq!(after_prefix("+csq: 20,99", "+CSQ:"), Some("20,99"));
        assert_eq!(after_prefix("+CS", "+CSQ:"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse_fields(&s);
            let _ = unquote(&s);
            let _ = after_prefix(&s, "+CSQ:");
        }
    }
}
