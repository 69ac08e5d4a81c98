//! The importer's output: a gatehouse.toml as tables of keys and comments, printed as TOML text.
//!
//! The translators fill a [`Document`]; only this module knows TOML's syntax. Comments sit above
//! the key they explain, and every setting that could not be translated is a comment in the
//! table it belongs to, so the output reads as the user's own config with notes.

use std::fmt::Write as _;

/// A whole gatehouse.toml, in the order its tables are printed.
#[derive(Debug, Default)]
pub struct Document {
    /// Lines printed at the top, before any table.
    pub header: Vec<String>,
    pub server: Table,
    pub log: Table,
    pub limits: Table,
    pub listeners: Vec<Table>,
    pub apps: Vec<Table>,
    pub upstreams: Vec<Table>,
    pub routes: Vec<Table>,
    /// Settings that belong to no table, printed last.
    pub trailer: Vec<String>,
}

/// One table: its keys and comments in order.
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub enum Entry {
    Key(String, Value),
    Comment(String),
}

/// A TOML value, as much of TOML as a gatehouse.toml needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Value>),
    /// An inline table, `{ key = value, ... }`, keys in order.
    Inline(Vec<(String, Value)>),
}

impl Value {
    pub fn str(text: impl Into<String>) -> Value {
        Value::Str(text.into())
    }
}

impl Table {
    pub fn key(&mut self, key: &str, value: Value) {
        self.entries.push(Entry::Key(key.to_owned(), value));
    }

    /// A comment line (without the `# `).
    pub fn comment(&mut self, text: impl Into<String>) {
        self.entries.push(Entry::Comment(text.into()));
    }

    /// The value of `key`, if set.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find_map(|entry| match entry {
            Entry::Key(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    /// Replaces the value of `key`, or appends it.
    pub fn set(&mut self, key: &str, value: Value) {
        for entry in &mut self.entries {
            if let Entry::Key(k, v) = entry {
                if k == key {
                    *v = value;
                    return;
                }
            }
        }
        self.key(key, value);
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Document {
    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            comment_line(&mut out, line);
        }
        let singles = [
            ("server", &self.server),
            ("log", &self.log),
            ("limits", &self.limits),
        ];
        for (name, table) in singles {
            if !table.is_empty() {
                let _ = write!(out, "\n[{name}]\n");
                write_entries(&mut out, table);
            }
        }
        let arrays = [
            ("listener", &self.listeners),
            ("app", &self.apps),
            ("upstream", &self.upstreams),
            ("route", &self.routes),
        ];
        for (name, tables) in arrays {
            for table in tables {
                let _ = write!(out, "\n[[{name}]]\n");
                write_entries(&mut out, table);
            }
        }
        if !self.trailer.is_empty() {
            out.push('\n');
            for line in &self.trailer {
                comment_line(&mut out, line);
            }
        }
        out
    }
}

fn write_entries(out: &mut String, table: &Table) {
    for entry in &table.entries {
        match entry {
            Entry::Key(key, value) => {
                let _ = writeln!(out, "{key} = {}", render_value(value));
            }
            Entry::Comment(text) => comment_line(out, text),
        }
    }
}

/// `# text`, one line per line of `text`.
fn comment_line(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    if text.is_empty() {
        out.push_str("#\n");
    }
}

pub fn render_value(value: &Value) -> String {
    match value {
        Value::Str(text) => quote(text),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(render_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Inline(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{} = {}", bare_or_quoted(k), render_value(v)))
                .collect();
            format!("{{ {} }}", pairs.join(", "))
        }
    }
}

/// A TOML basic string. Control characters and non-ASCII text are escaped, so the output is
/// plain ASCII whatever the input held.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || !c.is_ascii() => {
                let _ = if (c as u32) <= 0xFFFF {
                    write!(out, "\\u{:04X}", c as u32)
                } else {
                    write!(out, "\\U{:08X}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Keys of inline tables (environment variable names) may need quoting.
fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        quote(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_toml() {
        assert_eq!(render_value(&Value::str("a\"b\\c")), r#""a\"b\\c""#);
        assert_eq!(render_value(&Value::str("é")), r#""\u00E9""#);
        assert_eq!(
            render_value(&Value::Array(vec![Value::Int(1), Value::Bool(true)])),
            "[1, true]"
        );
        assert_eq!(
            render_value(&Value::Inline(vec![
                ("A_B".into(), Value::str("1")),
                ("a.b".into(), Value::Int(2))
            ])),
            r#"{ A_B = "1", "a.b" = 2 }"#
        );
    }

    #[test]
    fn empty_tables_are_left_out_and_comments_kept() {
        let mut doc = Document::default();
        doc.header.push("made by a test".into());
        doc.log.key("level", Value::str("info"));
        let mut route = Table::default();
        route.comment("why");
        route.key("path", Value::str("/"));
        doc.routes.push(route);
        assert_eq!(
            doc.render(),
            "# made by a test\n\n[log]\nlevel = \"info\"\n\n[[route]]\n# why\npath = \"/\"\n"
        );
    }
}
