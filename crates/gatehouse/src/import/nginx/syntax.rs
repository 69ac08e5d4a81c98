//! Nginx's config syntax: directives (`name args...;`) and blocks (`name args... { ... }`), with
//! `#` comments and single- or double-quoted arguments. Only the syntax: what a directive means
//! is `nginx.rs`'s business. `include` is not followed.

use std::fmt;

/// One directive, with its block's directives if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    /// 1-based line of the directive's name.
    pub line: usize,
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    /// `name arg1 arg2`, as the user wrote it (for comments).
    pub fn text(&self) -> String {
        let mut text = self.name.clone();
        for arg in &self.args {
            text.push(' ');
            if arg.is_empty() || arg.contains(char::is_whitespace) || arg.contains(['{', '}', ';'])
            {
                text.push_str(&format!("{arg:?}"));
            } else {
                text.push_str(arg);
            }
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SyntaxError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Semicolon,
    Open,
    Close,
}

/// Parses a whole file into its top-level directives.
pub fn parse(text: &str) -> Result<Vec<Directive>, SyntaxError> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let directives = block(&tokens, &mut pos, None)?;
    Ok(directives)
}

/// Directives until `}` (when `opened` is the line of the `{`) or the end.
fn block(
    tokens: &[(Token, usize)],
    pos: &mut usize,
    opened: Option<usize>,
) -> Result<Vec<Directive>, SyntaxError> {
    let mut directives = Vec::new();
    loop {
        let Some((token, line)) = tokens.get(*pos) else {
            return match opened {
                Some(line) => Err(error(line, "this block's \"{\" has no \"}\"")),
                None => Ok(directives),
            };
        };
        *pos += 1;
        let name = match token {
            Token::Close if opened.is_some() => return Ok(directives),
            Token::Close => return Err(error(*line, "unexpected \"}\"")),
            Token::Open | Token::Semicolon => {
                return Err(error(*line, "expected a directive name"))
            }
            Token::Word(name) => name.clone(),
        };
        let mut args = Vec::new();
        loop {
            let Some((token, at)) = tokens.get(*pos) else {
                return Err(error(
                    *line,
                    &format!("directive {name:?} has no ending \";\""),
                ));
            };
            *pos += 1;
            match token {
                Token::Word(arg) => args.push(arg.clone()),
                Token::Semicolon => {
                    directives.push(Directive {
                        name,
                        args,
                        line: *line,
                        block: None,
                    });
                    break;
                }
                Token::Open => {
                    let inner = block(tokens, pos, Some(*at))?;
                    directives.push(Directive {
                        name,
                        args,
                        line: *line,
                        block: Some(inner),
                    });
                    break;
                }
                Token::Close => {
                    return Err(error(
                        *at,
                        &format!("directive {name:?} has no ending \";\""),
                    ))
                }
            }
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, SyntaxError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' | '{' | '}' => {
                chars.next();
                let token = match c {
                    ';' => Token::Semicolon,
                    '{' => Token::Open,
                    _ => Token::Close,
                };
                tokens.push((token, line));
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(error(start, "unterminated quoted string")),
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some(other) => {
                                if other == '\n' {
                                    line += 1;
                                }
                                if other != c && other != '\\' {
                                    word.push('\\');
                                }
                                word.push(other);
                            }
                            None => return Err(error(start, "unterminated quoted string")),
                        },
                        Some(other) => {
                            if other == '\n' {
                                line += 1;
                            }
                            word.push(other);
                        }
                    }
                }
                tokens.push((Token::Word(word), start));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == ';' || c == '{' || c == '}' {
                        // `${name}` is a variable inside a word, not a block.
                        if c == '{' && word.ends_with('$') {
                            word.push(c);
                            chars.next();
                            for c in chars.by_ref() {
                                word.push(c);
                                if c == '}' {
                                    break;
                                }
                            }
                            continue;
                        }
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push((Token::Word(word), line));
            }
        }
    }
    Ok(tokens)
}

fn error(line: usize, message: &str) -> SyntaxError {
    SyntaxError {
        line,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_blocks_quotes_and_comments() {
        let parsed = parse(
            "upstream app { server 127.0.0.1:8000 fail_timeout=0; }\n\
             # a comment\n\
             server {\n  return 200 \"a; b\" ; # trailing\n  set $x ${host}x;\n}\n",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].name, "upstream");
        assert_eq!(parsed[0].args, ["app"]);
        let inner = parsed[0].block.as_ref().unwrap();
        assert_eq!(inner[0].args, ["127.0.0.1:8000", "fail_timeout=0"]);
        let server = parsed[1].block.as_ref().unwrap();
        assert_eq!(parsed[1].line, 3);
        assert_eq!(server[0].args, ["200", "a; b"]);
        assert_eq!(server[0].line, 4);
        assert_eq!(server[1].args, ["$x", "${host}x"]);
        assert_eq!(server[0].text(), "return 200 \"a; b\"");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("server {\n listen 80;\n").unwrap_err().line, 1);
        assert_eq!(parse("listen 80\n}").unwrap_err().line, 2);
        assert_eq!(parse("}").unwrap_err().message, "unexpected \"}\"");
        assert_eq!(
            parse("a \"b;\n").unwrap_err().message,
            "unterminated quoted string"
        );
    }
}
