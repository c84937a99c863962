//! `--format`: `table` (the default), `json` (capsa's own JSON), or a Go
//! template as docker takes one: `{{.Names}}`, `{{json .}}`,
//! `table {{.ID}}\t{{.Status}}` (a header row, then columns aligned as
//! docker's tabwriter aligns them). Templates run on gtmpl, with the
//! functions docker adds (`json`, `join`, `split`, `lower`, `upper`,
//! `title`, `truncate`, `pad`).

use anyhow::{anyhow, Result};
use gtmpl::{Context, FuncError, Template, Value};
use std::collections::HashMap;
use std::str::FromStr;

/// What `--format` asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
    /// A Go template; `table` asks for a header row and aligned columns.
    Template {
        table: bool,
        text: String,
    },
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        match s.trim() {
            "" | "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            t => {
                let (table, body) = match t.strip_prefix("table") {
                    Some(rest) if rest.starts_with(char::is_whitespace) => {
                        (true, rest.trim_start())
                    }
                    _ => (false, t),
                };
                // As docker: `\t` and `\n` written in the flag are a tab
                // and a newline.
                let text = body.replace("\\t", "\t").replace("\\n", "\n");
                compile(&text).map_err(|e| format!("not a Go template: {e}"))?;
                Ok(Format::Template { table, text })
            }
        }
    }
}

fn compile(text: &str) -> Result<Template> {
    let mut t = Template::default();
    t.add_funcs(FUNCS);
    t.parse(text).map_err(|e| anyhow!("{e}"))?;
    Ok(t)
}

/// An RFC 3339 UTC time as Go prints a `time.Time` (docker's `CreatedAt`):
/// `2026-11-30 17:12:44 +0000 UTC`.
pub fn go_time(rfc3339: &str) -> String {
    format!(
        "{} +0000 UTC",
        rfc3339.replacen('T', " ", 1).trim_end_matches('Z')
    )
}

/// With a template asked for, print `rows` (docker's fields for the
/// command, with `headers` their column titles) by it and say so; with
/// `table` or `json` the command prints its own way.
pub fn template(f: &Format, rows: &[serde_json::Value], headers: &[(&str, &str)]) -> Result<bool> {
    let Format::Template { table, text } = f else {
        return Ok(false);
    };
    print!("{}", render(text, *table, rows, headers)?);
    Ok(true)
}

/// Render `rows` by the template, one line each (a row's output may hold
/// more); with `table`, a header row first: the template run over
/// `headers`, each field's docker column title.
pub fn render(
    text: &str,
    table: bool,
    rows: &[serde_json::Value],
    headers: &[(&str, &str)],
) -> Result<String> {
    let t = compile(text)?;
    let run = |v: Value| -> Result<String> {
        t.render(&Context::from(v)).map_err(|e| {
            // gtmpl names a missing field with the whole row after it.
            let e = e.to_string();
            let short = e.split(" for {").next().unwrap_or(&e);
            anyhow!("--format: {short}")
        })
    };
    let mut out = String::new();
    if table {
        let h: HashMap<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        out.push_str(&run(Value::Object(h))?);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&run(top(r))?);
        out.push('\n');
    }
    Ok(terminal_safe(&if table { align(&out) } else { out }))
}

/// Security: what a template prints holds strings of images and
/// containers (label keys and values, a health probe's output, names of
/// events' attributes): a control character other than the newline and
/// tab a template writes, and every C1 one, is written escaped, never as a
/// sequence the terminal obeys.
fn terminal_safe(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split('\t')
                .map(capsa_engine::events::visible)
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A row: its own fields are checked (a misspelt one is an error, as a
/// Go struct's), nested maps are not (a missing key is `<no value>`).
fn top(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), value(v))).collect())
        }
        v => value(v),
    }
}

fn value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        serde_json::Value::Object(m) => {
            Value::Map(m.iter().map(|(k, v)| (k.clone(), value(v))).collect())
        }
    }
}

/// Back to JSON, for `{{json .}}`: keys sorted, as Go writes a map.
fn json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::String(s) => s.clone().into(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.into(),
            (_, Some(i), _) => i.into(),
            (_, _, Some(f)) => f.into(),
            _ => serde_json::Value::Null,
        },
        Value::Array(a) => a.iter().map(json).collect(),
        Value::Object(m) | Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn arg<'a>(name: &str, args: &'a [Value], n: usize) -> std::result::Result<&'a [Value], FuncError> {
    if args.len() != n {
        return Err(FuncError::ExactlyXArgs(name.into(), n));
    }
    Ok(args)
}

fn f_json(args: &[Value]) -> std::result::Result<Value, FuncError> {
    let a = arg("json", args, 1)?;
    Ok(Value::String(no_c1(&json(&a[0]).to_string())))
}

/// JSON text with the C1 controls (U+0080 to U+009F, which a terminal may
/// take as escape sequences; serde_json leaves them raw) escaped.
pub fn no_c1(text: &str) -> String {
    text.chars()
        .map(|c| {
            if ('\u{80}'..='\u{9f}').contains(&c) {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `v` as pretty JSON, for the terminal (see [`no_c1`]).
pub fn pretty(v: &impl serde::Serialize) -> Result<String> {
    Ok(no_c1(&serde_json::to_string_pretty(v)?))
}
fn f_join(args: &[Value]) -> std::result::Result<Value, FuncError> {
    let a = arg("join", args, 2)?;
    let sep = text(&a[1]);
    match &a[0] {
        Value::Array(items) => Ok(Value::String(
            items.iter().map(text).collect::<Vec<_>>().join(&sep),
        )),
        v => Ok(Value::String(text(v))),
    }
}
fn f_split(args: &[Value]) -> std::result::Result<Value, FuncError> {
    let a = arg("split", args, 2)?;
    let (s, sep) = (text(&a[0]), text(&a[1]));
    Ok(Value::Array(
        s.split(sep.as_str())
            .map(|p| Value::String(p.into()))
            .collect(),
    ))
}
fn f_lower(args: &[Value]) -> std::result::Result<Value, FuncError> {
    Ok(Value::String(
        text(&arg("lower", args, 1)?[0]).to_lowercase(),
    ))
}
fn f_upper(args: &[Value]) -> std::result::Result<Value, FuncError> {
    Ok(Value::String(
        text(&arg("upper", args, 1)?[0]).to_uppercase(),
    ))
}
fn f_title(args: &[Value]) -> std::result::Result<Value, FuncError> {
    let s = text(&arg("title", args, 1)?[0]);
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}
fn f_truncate(args: &[Value]) -> std::result::Result<Value, FuncError> {
    let a = arg("truncate", args, 2)?;
    let n = match &a[1] {
        Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
        _ => return Err(FuncError::UnableToConvertFromValue),
    };
    Ok(Value::String(text(&a[0]).chars().take(n).collect()))
}
fn f_pad(args: &[Value]) -> std::result::Result<Value, FuncError> {
    let a = arg("pad", args, 3)?;
    let n = |v: &Value| match v {
        Value::Number(n) => Ok(n.as_u64().unwrap_or(0) as usize),
        _ => Err(FuncError::UnableToConvertFromValue),
    };
    let (l, r) = (n(&a[1])?, n(&a[2])?);
    Ok(Value::String(format!(
        "{}{}{}",
        " ".repeat(l),
        text(&a[0]),
        " ".repeat(r)
    )))
}

const FUNCS: &[(&str, gtmpl::Func)] = &[
    ("json", f_json),
    ("join", f_join),
    ("split", f_split),
    ("lower", f_lower),
    ("upper", f_upper),
    ("title", f_title),
    ("truncate", f_truncate),
    ("pad", f_pad),
];

/// Go's tabwriter as docker sets it up (cells end at a tab; a column is
/// as wide as its widest cell plus 3, at least 10; the text after a
/// line's last tab is not a column), over consecutive lines that have
/// the column.
fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .trim_end_matches('\n')
        .split('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<Vec<usize>> = lines
        .iter()
        .map(|l| vec![0; l.len().saturating_sub(1)])
        .collect();
    let cols = lines
        .iter()
        .map(|l| l.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    for col in 0..cols {
        let mut i = 0;
        while i < lines.len() {
            if lines[i].len() <= col + 1 {
                i += 1;
                continue;
            }
            let start = i;
            let mut w = 0;
            while i < lines.len() && lines[i].len() > col + 1 {
                w = w.max(lines[i][col].chars().count());
                i += 1;
            }
            let w = (w + 3).max(10);
            for row in widths.iter_mut().take(i).skip(start) {
                row[col] = w;
            }
        }
    }
    let mut out = String::new();
    for (cells, ws) in lines.iter().zip(&widths) {
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = ws.get(j) {
                out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(fmt: &str) -> (bool, String) {
        match fmt.parse::<Format>().unwrap() {
            Format::Template { table, text } => (table, text),
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn templates_render_as_docker_renders_them() {
        let rows = [
            json!({"ID": "abc", "Names": "web", "Status": "Up 2 seconds", "Labels": {"a": "1"}}),
            json!({"ID": "defghi", "Names": "db", "Status": "Exited (0) 1 second ago", "Labels": {}}),
        ];
        let (table, text) = t("{{.Names}}");
        assert_eq!(render(&text, table, &rows, &[]).unwrap(), "web\ndb\n");
        let (table, text) = t(r"table {{.ID}}\t{{.Status}}");
        assert!(table);
        let out = render(
            &text,
            table,
            &rows,
            &[("ID", "CONTAINER ID"), ("Status", "STATUS")],
        )
        .unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   STATUS\nabc            Up 2 seconds\ndefghi         Exited (0) 1 second ago\n"
        );
        let (table, text) = t("{{json .}}");
        let out = render(&text, table, &rows[..1], &[]).unwrap();
        assert_eq!(
            out,
            "{\"ID\":\"abc\",\"Labels\":{\"a\":\"1\"},\"Names\":\"web\",\"Status\":\"Up 2 seconds\"}\n"
        );
        let (table, text) = t(
            "{{.Labels.a}}|{{.Labels.zz}}|{{upper .Names}}|{{join (split .Status \" \") \"_\"}}",
        );
        assert_eq!(
            render(&text, table, &rows[..1], &[]).unwrap(),
            "1|<no value>|WEB|Up_2_seconds\n"
        );
    }

    #[test]
    fn a_bad_template_or_field_is_an_error() {
        assert!("{{.Names"
            .parse::<Format>()
            .unwrap_err()
            .contains("not a Go template"));
        let (table, text) = t("{{.Nmes}}");
        assert!(render(&text, table, &[json!({"Names": "x"})], &[]).is_err());
        assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
        assert_eq!("table".parse::<Format>().unwrap(), Format::Table);
    }
}
