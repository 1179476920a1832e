//! Splitting an AT command line into commands (V.250 basic, S-register and extended syntax).

/// One command of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cmd {
    /// Basic command: a letter (or &letter) with an optional number, e.g. E0, V1, &F, Z, I.
    Basic { name: String, num: Option<u32> },
    /// ATD: the dial string (rest of the line, `;` included).
    Dial(String),
    /// S-register: Sn? or Sn=v.
    SReg { reg: u32, value: Option<u32> },
    /// Extended command: +NAME, ^NAME, $NAME … (name upper-cased, prefix included).
    Ext { name: String, form: Form },
}

/// Form of an extended command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    /// `+CMD`
    Exec,
    /// `+CMD?`
    Read,
    /// `+CMD=?`
    Test,
    /// `+CMD=<args>`
    Set(Args),
}

/// One parameter of a set command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// Omitted (`,,`).
    Empty,
    /// A quoted string (quotes removed).
    Str(String),
    /// Unquoted text (numbers and bare words), trimmed.
    Raw(String),
}

/// Parameters of a set command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Args(pub Vec<Arg>);

/// Why a command line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Syntax;

impl Args {
    /// Number of parameters given.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Parameter `i` as an integer; Ok(None) when omitted.
    pub(crate) fn int(&self, i: usize) -> Result<Option<i64>, Syntax> {
        match self.0.get(i) {
            None | Some(Arg::Empty) => Ok(None),
            Some(Arg::Raw(s)) | Some(Arg::Str(s)) => {
                s.trim().parse::<i64>().map(Some).map_err(|_| Syntax)
            }
        }
    }

    /// Parameter `i` as an integer within `lo..=hi`; Ok(None) when omitted.
    pub(crate) fn int_in(&self, i: usize, lo: i64, hi: i64) -> Result<Option<i64>, Syntax> {
        match self.int(i)? {
            Some(v) if v < lo || v > hi => Err(Syntax),
            v => Ok(v),
        }
    }

    /// Parameter `i` as text (quoted or not); None when omitted.
    pub(crate) fn text(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Arg::Str(s)) | Some(Arg::Raw(s)) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// Find the start of the command (the "AT" prefix); None if the line has none.
pub(crate) fn strip_at(line: &str) -> Option<&str> {
    let upper = line.to_ascii_uppercase();
    let pos = upper.find("AT")?;
    line.get(pos + 2..)
}

/// A command as configured for the `reject` / `iccid-forms` options, normalised: upper case,
/// without `AT` and spaces (`AT+CGMR` → `+CGMR`, `at!iccid?` → `!ICCID?`).
pub(crate) fn normalize_command(cmd: &str) -> String {
    let up: String = cmd
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    up.strip_prefix("AT").map_or(up.clone(), str::to_string)
}

/// The name part of a normalised command (`+CRSM=176,...` → `+CRSM`).
pub(crate) fn command_name(normalized: &str) -> &str {
    let end = normalized.find(['=', '?']).unwrap_or(normalized.len());
    &normalized[..end]
}

/// Whether one command of a line (normalised, e.g. `+CGMR` or `!ICCID?`) is `pattern`
/// (normalised): the same text, or the pattern is a bare name and the command is one of its
/// forms.
pub(crate) fn command_matches(pattern: &str, command: &str) -> bool {
    pattern == command || (command_name(pattern) == pattern && command_name(command) == pattern)
}

/// Split the body of a command line (after "AT") into commands.
pub(crate) fn parse_line(body: &str) -> Result<Vec<Cmd>, Syntax> {
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut cmds = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == ';' {
            i += 1;
            continue;
        }
        let up = c.to_ascii_uppercase();
        if matches!(c, '+' | '^' | '$' | '%' | '#' | '*' | '!') {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if i == start + 1 {
                return Err(Syntax);
            }
            let name: String = chars[start..i]
                .iter()
                .collect::<String>()
                .to_ascii_uppercase();
            let form = if chars.get(i) == Some(&'?') {
                i += 1;
                Form::Read
            } else if chars.get(i) == Some(&'=') {
                i += 1;
                if chars.get(i) == Some(&'?') {
                    i += 1;
                    Form::Test
                } else {
                    let (args, next) = parse_args(&chars, i)?;
                    i = next;
                    Form::Set(args)
                }
            } else {
                Form::Exec
            };
            // Only ';' (or the end) may follow an extended command.
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            if i < chars.len() && chars[i] != ';' {
                return Err(Syntax);
            }
            cmds.push(Cmd::Ext { name, form });
        } else if up == 'D' {
            let rest: String = chars[i + 1..].iter().collect();
            cmds.push(Cmd::Dial(rest.trim().to_string()));
            break;
        } else if up == 'S' {
            i += 1;
            let (reg, next) = number(&chars, i).ok_or(Syntax)?;
            i = next;
            let value = if chars.get(i) == Some(&'?') {
                i += 1;
                None
            } else if chars.get(i) == Some(&'=') {
                let (v, next) = number(&chars, i + 1).ok_or(Syntax)?;
                i = next;
                Some(v)
            } else {
                return Err(Syntax);
            };
            cmds.push(Cmd::SReg { reg, value });
        } else if up == '&' {
            let letter = chars.get(i + 1).ok_or(Syntax)?.to_ascii_uppercase();
            if !letter.is_ascii_alphabetic() {
                return Err(Syntax);
            }
            i += 2;
            let (num, next) = match number(&chars, i) {
                Some((n, next)) => (Some(n), next),
                None => (None, i),
            };
            i = next;
            cmds.push(Cmd::Basic {
                name: format!("&{letter}"),
                num,
            });
        } else if up.is_ascii_alphabetic() {
            i += 1;
            let (num, next) = match number(&chars, i) {
                Some((n, next)) => (Some(n), next),
                None => (None, i),
            };
            i = next;
            cmds.push(Cmd::Basic {
                name: up.to_string(),
                num,
            });
        } else {
            return Err(Syntax);
        }
    }
    Ok(cmds)
}

fn number(chars: &[char], mut i: usize) -> Option<(u32, usize)> {
    let start = i;
    let mut v: u32 = 0;
    while i < chars.len() && chars[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add(chars[i].to_digit(10)?)?;
        i += 1;
    }
    (i > start).then_some((v, i))
}

fn parse_args(chars: &[char], mut i: usize) -> Result<(Args, usize), Syntax> {
    let mut args = Vec::new();
    loop {
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if chars.get(i) == Some(&'"') {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(Syntax),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        s.push(*c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            args.push(Arg::Str(s));
        } else {
            let start = i;
            while i < chars.len() && chars[i] != ',' && chars[i] != ';' {
                if chars[i] == '"' {
                    return Err(Syntax);
                }
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let s = s.trim();
            args.push(if s.is_empty() {
                Arg::Empty
            } else {
                Arg::Raw(s.to_string())
            });
        }
        match chars.get(i) {
            Some(',') => i += 1,
            None | Some(';') => break,
            Some(_) => return Err(Syntax),
        }
    }
    Ok((Args(args), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, form: Form) -> Cmd {
        Cmd::Ext {
            name: name.into(),
            form,
        }
    }

    #[test]
    fn splits_compound_lines() {
        let cmds = parse_line("+cmgf=0;+CNMI=2,1,0,1,0").unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(
            cmds[0],
            ext("+CMGF", Form::Set(Args(vec![Arg::Raw("0".into())])))
        );
        let cmds = parse_line("E0V1&FI").unwrap();
        assert_eq!(cmds.len(), 4);
        assert_eq!(
            cmds[2],
            Cmd::Basic {
                name: "&F".into(),
                num: None
            }
        );
    }

    #[test]
    fn forms_and_quotes() {
        assert_eq!(
            parse_line("+CPIN?").unwrap(),
            vec![ext("+CPIN", Form::Read)]
        );
        assert_eq!(
            parse_line("+CREG=?").unwrap(),
            vec![ext("+CREG", Form::Test)]
        );
        let c = parse_line("+CUSD=1,\"*111#\",15").unwrap();
        assert_eq!(
            c,
            vec![ext(
                "+CUSD",
                Form::Set(Args(vec![
                    Arg::Raw("1".into()),
                    Arg::Str("*111#".into()),
                    Arg::Raw("15".into())
                ]))
            )]
        );
        assert!(parse_line("+CUSD=1,\"abc").is_err());
        let c = parse_line("+CMGL=,1").unwrap();
        assert_eq!(
            c,
            vec![ext(
                "+CMGL",
                Form::Set(Args(vec![Arg::Empty, Arg::Raw("1".into())]))
            )]
        );
    }

    #[test]
    fn vendor_command_forms() {
        for (line, name, form) in [
            ("!ICCID?", "!ICCID", Form::Read),
            ("#CCID", "#CCID", Form::Exec),
            ("+ZGETICCID", "+ZGETICCID", Form::Exec),
            ("^ICCID?", "^ICCID", Form::Read),
        ] {
            assert_eq!(parse_line(line).unwrap(), vec![ext(name, form)], "{line}");
        }
        assert_eq!(normalize_command("at!iccid?"), "!ICCID?");
        assert_eq!(normalize_command("ATI"), "I");
        assert!(command_matches("+CGMR", "+CGMR"));
        assert!(command_matches("+CRSM", "+CRSM=176,12258,0,0,10"));
        assert!(command_matches(
            "+CRSM=176,12258,0,0,10",
            "+CRSM=176,12258,0,0,10"
        ));
        assert!(!command_matches(
            "+CRSM=176,12258,0,0,10",
            "+CRSM=176,28423,0,0,9"
        ));
        assert!(!command_matches("+CGMR", "+CGMM"));
        assert!(!command_matches("+CCID", "+QCCID"));
    }

    #[test]
    fn dial_takes_the_rest() {
        assert_eq!(
            parse_line("D+380501234567;").unwrap(),
            vec![Cmd::Dial("+380501234567;".into())]
        );
        assert_eq!(strip_at("xxat+csq"), Some("+csq"));
        assert_eq!(strip_at("hello"), None);
    }
}
