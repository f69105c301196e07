//! A small RFC 4180 CSV parser (quoted fields with commas, doubled quotes and line
//! breaks inside quotes; LF or CRLF line ends), enough for PTB-XL's tables.

/// A CSV syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A quoted field is not closed before the end of the text.
    #[error("line {line}: unterminated quoted field")]
    UnterminatedQuote {
        /// 1-based line where the field starts.
        line: usize,
    },
    /// Text follows a closing quote before the next separator.
    #[error("line {line}: unexpected character {found:?} after a closing quote")]
    AfterQuote {
        /// 1-based line.
        line: usize,
        /// The character found.
        found: char,
    },
}

/// Parses CSV text into rows, each with the 1-based line on which it starts.
/// Empty lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut rows = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut at_field_start = true;
    let mut row_empty = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_field_start => {
                let start = line;
                loop {
                    match chars.next() {
                        None => return Err(CsvError::UnterminatedQuote { line: start }),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            field.push(ch);
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\n') | Some('\r') => {}
                    Some(&found) => return Err(CsvError::AfterQuote { line, found }),
                }
                at_field_start = false;
                row_empty = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
                row_empty = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if !row_empty || !field.is_empty() {
                    row.push(std::mem::take(&mut field));
                    rows.push((row_line, std::mem::take(&mut row)));
                }
                line += 1;
                row_line = line;
                at_field_start = true;
                row_empty = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
                row_empty = false;
            }
        }
    }
    if !row_empty || !field.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields() {
        let t = "a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n\n2,\"multi\nline\",\n3";
        let rows = parse_csv(t).unwrap();
        assert_eq!(rows[0], (1, vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(rows[1].1, ["1", "x, y", "say \"hi\""]);
        assert_eq!(rows[2], (4, vec!["2".into(), "multi\nline".into(), "".into()]));
        assert_eq!(rows[3], (6, vec!["3".into()]));
        assert_eq!(parse_csv("a,\"b").unwrap_err(), CsvError::UnterminatedQuote { line: 1 });
        assert!(matches!(
            parse_csv("\"a\"b").unwrap_err(),
            CsvError::AfterQuote { found: 'b', .. }
        ));
        assert!(parse_csv("").unwrap().is_empty());
    }
}
