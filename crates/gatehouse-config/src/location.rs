//! Where in the file a problem is: key paths like `route[2].static.root`, and finding a path's
//! line and column in the document.
//!
//! Serde and validation only know key paths; `toml_edit` keeps the byte spans of every key, table
//! and value, so we walk its document along the path. The pinned rule is that a diagnostic points
//! at the offending key's own line; when the key is missing we point at the nearest enclosing
//! thing that exists (the `[[route]]` header, say), and at 1:1 when nothing does.

use std::fmt;

use toml_edit::{ImDocument, Item, Table, Value};

/// A path of keys and 0-based array indices from the document root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The path serde was at when it failed; enum variants carry no position of their own.
    pub fn from_serde(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment as S;
        let segments = path
            .iter()
            .filter_map(|segment| match segment {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Key(key.clone())),
                S::Enum { .. } | S::Unknown => None,
            })
            .collect();
        KeyPath(segments)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The byte offset of the key at `path`, or of the nearest enclosing thing that exists.
pub fn locate(doc: &ImDocument<&str>, path: &KeyPath) -> usize {
    enum Node<'a> {
        Table(&'a Table),
        Item(&'a Item),
        Value(&'a Value),
    }
    let mut best = 0;
    let mut node = Node::Table(doc.as_table());
    for segment in &path.0 {
        // Normalise: an `Item::Value` is looked at as its value, an `Item::Table` as its table.
        if let Node::Item(item) = node {
            node = match item {
                Item::Table(table) => Node::Table(table),
                Item::Value(value) => Node::Value(value),
                other => Node::Item(other),
            };
        }
        let (offset, next) = match (segment, &node) {
            (Segment::Key(key), Node::Table(table)) => match table.get_key_value(key) {
                Some((k, item)) => (k.span(), Node::Item(item)),
                None => break,
            },
            (Segment::Key(key), Node::Value(Value::InlineTable(table))) => {
                match table.get_key_value(key) {
                    Some((k, item)) => (k.span(), Node::Item(item)),
                    None => break,
                }
            }
            (Segment::Index(i), Node::Item(Item::ArrayOfTables(array))) => match array.get(*i) {
                Some(table) => (table.span(), Node::Table(table)),
                None => break,
            },
            (Segment::Index(i), Node::Value(Value::Array(array))) => match array.get(*i) {
                Some(value) => (value.span(), Node::Value(value)),
                None => break,
            },
            _ => break,
        };
        if let Some(span) = offset {
            best = span.start;
        }
        node = next;
    }
    best
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end clamp to it.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"# comment
[server]
graceful_timeout = "30s"

[[route]]
path = "/"

[[route]]
path = "/static/"
static = { root = "x", index = ["a", "b"] }

[[route]]
path = "/d/"
static.root = "y"
"#;

    fn at(path: &KeyPath) -> (usize, usize) {
        let doc = ImDocument::parse(DOC).unwrap();
        line_col(DOC, locate(&doc, path))
    }

    #[test]
    fn display() {
        let path = KeyPath::root()
            .key("route")
            .index(2)
            .key("static")
            .key("root");
        assert_eq!(path.to_string(), "route[2].static.root");
        assert_eq!(
            KeyPath::root()
                .key("app")
                .index(0)
                .key("env")
                .key("a.b")
                .to_string(),
            "app[0].env.\"a.b\""
        );
    }

    #[test]
    fn finds_keys_tables_and_values() {
        let root = KeyPath::root();
        assert_eq!(at(&root.key("server").key("graceful_timeout")), (3, 1));
        assert_eq!(at(&root.key("server")), (2, 2));
        assert_eq!(at(&root.key("route").index(0)), (5, 1));
        assert_eq!(at(&root.key("route").index(1).key("path")), (9, 1));
        let stat = root.key("route").index(1).key("static");
        assert_eq!(at(&stat.key("root")), (10, 12));
        assert_eq!(at(&stat.key("index").index(1)), (10, 38));
        assert_eq!(
            at(&root.key("route").index(2).key("static").key("root")),
            (14, 8)
        );
    }

    #[test]
    fn missing_keys_point_at_the_enclosing_table() {
        let root = KeyPath::root();
        assert_eq!(at(&root.key("route").index(0).key("app")), (5, 1));
        // No such element: the array's key in its first header.
        assert_eq!(at(&root.key("route").index(7)), (5, 3));
        assert_eq!(at(&root.key("listener")), (1, 1));
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_col("a = \"é\"\nb", 9), (2, 1));
        assert_eq!(line_col("é = 1", 3), (1, 3));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
