//! Variable expansion in a Containerfile's words, as Docker's shell lexer
//! does it for the instructions it expands (`ADD`, `COPY`, `ENV`,
//! `EXPOSE`, `FROM`, `LABEL`, `STOPSIGNAL`, `USER`, `VOLUME`, `WORKDIR`,
//! `ARG` defaults): `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`; quotes removed (single
//! quotes literal, double quotes expanding); the escape character making
//! the next character literal. An unset variable is empty.

/// Expand one word with `lookup` (a variable's value, `None` when unset).
pub fn word(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut lx = Lexer {
        chars: &chars,
        pos: 0,
        escape,
        lookup,
        depth: 0,
    };
    lx.until(None)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += c.is_some() as usize;
        c
    }

    /// Up to `stop` (a `}` closing a modifier's word) or the end.
    fn until(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                return Ok(out);
            }
            self.pos += 1;
            match c {
                '\'' => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(x) => out.push(x),
                        None => return Err(format!("{}: unclosed single quote", self.text())),
                    }
                },
                '"' => loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => out.push_str(&self.dollar()?),
                        Some(x) if x == self.escape => match self.peek() {
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                out.push(n);
                            }
                            _ => out.push(x),
                        },
                        Some(x) => out.push(x),
                        None => return Err(format!("{}: unclosed double quote", self.text())),
                    }
                },
                '$' => out.push_str(&self.dollar()?),
                x if x == self.escape => match self.next() {
                    Some(n) => out.push(n),
                    None => out.push(x),
                },
                x => out.push(x),
            }
        }
        match stop {
            Some(s) => Err(format!("{}: missing {s}", self.text())),
            None => Ok(out),
        }
    }

    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let n = self.name();
                Ok((self.lookup)(&n).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// After `${`.
    fn braced(&mut self) -> Result<String, String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(format!("{}: nested too deep", self.text()));
        }
        let name = self.name();
        if name.is_empty() {
            return Err(format!("{}: bad substitution", self.text()));
        }
        let value = (self.lookup)(&name);
        let r = match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(c) => {
                let colon = c == ':';
                let op = if colon { self.next() } else { Some(c) };
                let w = self.until(Some('}'))?;
                self.pos += 1; // the `}`
                               // With the colon, empty counts as unset.
                let set = match &value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match op {
                    Some('-') => Ok(if set { value.unwrap_or_default() } else { w }),
                    Some('+') => Ok(if set { w } else { String::new() }),
                    Some('?') if set => Ok(value.unwrap_or_default()),
                    Some('?') => Err(if w.is_empty() {
                        format!("{name}: is not set")
                    } else {
                        format!("{name}: {w}")
                    }),
                    _ => Err(format!(
                        "{}: unsupported modifier in ${{{name}...}}",
                        self.text()
                    )),
                }
            }
            None => Err(format!("{}: missing }}", self.text())),
        };
        self.depth -= 1;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(text: &str) -> Result<String, String> {
        let env = |k: &str| match k {
            "A" => Some("alpha".to_string()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("a b".to_string()),
            _ => None,
        };
        word(text, '\\', &env)
    }

    #[test]
    fn variables_expand_as_docker_does() {
        assert_eq!(x("$A").unwrap(), "alpha");
        assert_eq!(x("${A}/x").unwrap(), "alpha/x");
        assert_eq!(x("$A_x").unwrap(), "");
        assert_eq!(x("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(x("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(x("${EMPTY-dflt}").unwrap(), "");
        assert_eq!(x("${A:+alt}").unwrap(), "alt");
        assert_eq!(x("${NOPE:+alt}").unwrap(), "");
        assert_eq!(x("${NOPE:-${A}}").unwrap(), "alpha");
        assert_eq!(x("${NOPE:-a b}").unwrap(), "a b");
        assert!(x("${NOPE:?must be set}")
            .unwrap_err()
            .contains("must be set"));
        assert_eq!(x("$").unwrap(), "$");
        assert_eq!(x("a$-b").unwrap(), "a$-b");
    }

    #[test]
    fn quotes_and_escapes_are_removed() {
        assert_eq!(x("'$A'").unwrap(), "$A");
        assert_eq!(x("\"$A b\"").unwrap(), "alpha b");
        assert_eq!(x("\\$A").unwrap(), "$A");
        assert_eq!(x("\"\\$A\"").unwrap(), "$A");
        assert_eq!(x("\"a\\nb\"").unwrap(), "a\\nb");
        assert_eq!(x("a\\ b").unwrap(), "a b");
        assert!(x("\"open").is_err());
        assert!(x("${A").is_err());
        assert!(x("${}").is_err());
        assert!(x("${A%x}").is_err());
    }

    #[test]
    fn the_escape_directive_changes_the_escape() {
        let env = |_: &str| Some("v".to_string());
        assert_eq!(word("`$X", '`', &env).unwrap(), "$X");
        assert_eq!(word("C:\\dir", '`', &env).unwrap(), "C:\\dir");
    }
}
