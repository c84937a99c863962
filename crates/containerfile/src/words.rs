//! Splitting an instruction's arguments the way Docker's parser does:
//! words (quotes and escapes kept for the expander), `KEY=VALUE` pairs,
//! leading `--flag=value` options, the JSON form, and heredoc markers.

/// `["a", "b"]`: the JSON form. Anything else (even almost-JSON) is the
/// shell form, as Docker falls back.
pub fn json_list(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') || !t.ends_with(']') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Split on whitespace outside quotes. Quotes and escapes stay in the
/// words: expanding a word removes them.
pub fn split_words(rest: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            None => {}
        }
        cur.push(c);
        in_word = true;
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `KEY=VALUE ...` (values still quoted), or the old `KEY VALUE` form
/// where the value is the rest of the line.
pub fn split_pairs(rest: &str, escape: char, env: bool) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest, escape);
    let Some(first) = words.first() else {
        return Err("needs KEY=VALUE".into());
    };
    if !first.contains('=') {
        let (k, v) = rest
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{first}: needs a value (KEY=VALUE or KEY VALUE)"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!("{w}: not KEY=VALUE"));
        };
        if k.is_empty() {
            return Err(format!("{w}: the name is empty"));
        }
        if env && k.contains(char::is_whitespace) {
            return Err(format!("{k:?}: a name cannot hold spaces"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `--name=value` options, in order.
pub type Flags = Vec<(String, String)>;

/// Leading `--name=value` (or `--name`) options, each one of `allowed`,
/// and the rest of the line.
pub fn split_flags<'a>(rest: &'a str, allowed: &[&str]) -> Result<(Flags, &'a str), String> {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(body) = r.strip_prefix("--") {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        let word = &body[..end];
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, v),
            None => (word, "true"),
        };
        if !allowed.contains(&name) {
            return Err(format!("unknown flag --{name}"));
        }
        flags.push((name.to_string(), unquote(value).to_string()));
        r = body[end..].trim_start();
    }
    Ok((flags, r))
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(x) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return x;
        }
    }
    v
}

/// The heredoc markers in an instruction's line, in order: the delimiter,
/// whether leading tabs are stripped (`<<-`), and whether the body is
/// expanded (an unquoted delimiter).
pub fn heredoc_markers(rest: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    for w in rest.split_whitespace() {
        if let Some(m) = heredoc_marker(w) {
            out.push(m);
        }
    }
    out
}

/// One word as a heredoc marker (`<<EOF`, `<<-"EOF"`, `cat<<EOF`).
pub fn heredoc_marker(word: &str) -> Option<(String, bool, bool)> {
    let at = word.find("<<")?;
    let mut m = &word[at + 2..];
    if m.starts_with('<') {
        return None; // a here-string
    }
    let strip = m.starts_with('-');
    if strip {
        m = &m[1..];
    }
    let mut expand = true;
    for q in ['"', '\''] {
        if let Some(x) = m.strip_prefix(q) {
            let end = x.find(q)?;
            m = &x[..end];
            expand = false;
            break;
        }
    }
    let end = m
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(m.len());
    let name = &m[..end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((name.to_string(), strip, expand))
}
