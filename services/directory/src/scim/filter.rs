//! SCIM filters (RFC 7644 §3.4.2.2) over a resource's JSON: attribute paths (`userName`,
//! `name.familyName`, `emails.value`, `urn:…:enterprise:2.0:User:employeeNumber`), the
//! comparison operators, `pr`, `and`, `or`, `not` and parentheses. Attribute names and string
//! comparisons ignore case, as the core schema's attributes are case-insensitive (`caseExact`
//! false) except `id`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare { path: String, op: Op, value: Value },
    Present(String),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
}

fn tokens(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped) => text.push(escaped),
                            None => return Err("unterminated string".to_owned()),
                        },
                        Some('"') => break,
                        Some(other) => text.push(other),
                        None => return Err("unterminated string".to_owned()),
                    }
                }
                out.push(Token::Text(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(word)) => Some(word.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek_word().as_deref() == Some("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_word().as_deref() == Some("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_word().as_deref() == Some("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.group()?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            return self.group();
        }
        self.comparison()
    }

    fn group(&mut self) -> Result<Filter, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected (".to_owned());
        }
        let inner = self.or()?;
        if self.next() != Some(Token::Close) {
            return Err("expected )".to_owned());
        }
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Filter, String> {
        let Some(Token::Word(path)) = self.next() else {
            return Err("expected an attribute".to_owned());
        };
        let Some(Token::Word(op)) = self.next() else {
            return Err(format!("expected an operator after {path}"));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(format!("unknown operator {other}")),
        };
        let value = match self.next() {
            Some(Token::Text(text)) => Value::String(text),
            Some(Token::Word(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => word
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("not a value: {word}"))?,
            },
            _ => return Err(format!("expected a value after {path}")),
        };
        Ok(Filter::Compare { path, op, value })
    }
}

pub fn parse(input: &str) -> Result<Filter, String> {
    let mut parser = Parser {
        tokens: tokens(input)?,
        at: 0,
    };
    let filter = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err("unexpected text after the filter".to_owned());
    }
    Ok(filter)
}

/// The values at `path` in `resource` (several through multi-valued attributes).
pub fn values_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    // An extension attribute: `urn:…:User:employeeNumber` lives under the URN key.
    let (mut current, rest) = match split_urn(resource, path) {
        Some((extension, rest)) => (vec![extension], rest),
        None => (vec![resource], path),
    };
    for segment in rest.split('.').filter(|s| !s.is_empty()) {
        let mut next = Vec::new();
        for value in current {
            for item in flatten(value) {
                if let Some(found) = field(item, segment) {
                    next.extend(flatten(found));
                }
            }
        }
        current = next;
    }
    current.into_iter().flat_map(flatten).collect()
}

fn split_urn<'a, 'p>(resource: &'a Value, path: &'p str) -> Option<(&'a Value, &'p str)> {
    if !path.to_ascii_lowercase().starts_with("urn:") {
        return None;
    }
    let object = resource.as_object()?;
    object.iter().find_map(|(key, value)| {
        let lower = key.to_ascii_lowercase();
        let wanted = path.to_ascii_lowercase();
        if wanted == lower {
            Some((value, ""))
        } else if wanted.starts_with(&format!("{lower}:")) {
            Some((value, &path[key.len() + 1..]))
        } else {
            None
        }
    })
}

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn flatten(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn compare(actual: &Value, op: Op, wanted: &Value, case_exact: bool) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(w)) => {
            let (a, w) = if case_exact {
                (a.clone(), w.clone())
            } else {
                (a.to_lowercase(), w.to_lowercase())
            };
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Co => a.contains(&w),
                Op::Sw => a.starts_with(&w),
                Op::Ew => a.ends_with(&w),
                Op::Gt => a > w,
                Op::Ge => a >= w,
                Op::Lt => a < w,
                Op::Le => a <= w,
            }
        }
        (Value::Bool(a), Value::Bool(w)) => match op {
            Op::Eq => a == w,
            Op::Ne => a != w,
            _ => false,
        },
        (Value::Number(a), Value::Number(w)) => {
            let (a, w) = (
                a.as_f64().unwrap_or(f64::NAN),
                w.as_f64().unwrap_or(f64::NAN),
            );
            match op {
                Op::Eq => a == w,
                Op::Ne => a != w,
                Op::Gt => a > w,
                Op::Ge => a >= w,
                Op::Lt => a < w,
                Op::Le => a <= w,
                _ => false,
            }
        }
        (_, Value::Null) => match op {
            Op::Eq => actual.is_null(),
            Op::Ne => !actual.is_null(),
            _ => false,
        },
        _ => false,
    }
}

fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        _ => true,
    }
}

impl Filter {
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::Compare { path, op, value } => {
                let case_exact = path.eq_ignore_ascii_case("id");
                let found = values_at(resource, path);
                if found.is_empty() {
                    return *op == Op::Ne || (value.is_null() && *op == Op::Eq);
                }
                if *op == Op::Ne {
                    return found.iter().all(|v| compare(v, Op::Ne, value, case_exact));
                }
                found.iter().any(|v| compare(v, *op, value, case_exact))
            }
            Filter::Present(path) => values_at(resource, path).into_iter().any(present),
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(inner) => !inner.matches(resource),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ada() -> Value {
        json!({
            "id": "u-1",
            "userName": "Ada@Clinic.Example",
            "externalId": "00u1",
            "active": true,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@clinic.example", "type": "work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701"}
        })
    }

    fn matches(filter: &str) -> bool {
        parse(filter)
            .map(|f| f.matches(&ada()))
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
    }

    #[test]
    fn the_filters_identity_providers_send() {
        assert!(matches(r#"userName eq "ada@clinic.example""#));
        assert!(matches(r#"USERNAME Eq "ADA@clinic.example""#));
        assert!(matches(r#"externalId eq "00u1""#));
        assert!(!matches(r#"externalId eq "00U1x""#));
        assert!(matches(r#"emails.value eq "ada@clinic.example""#));
        assert!(matches(r#"name.familyName sw "love" and active eq true"#));
        assert!(matches(r#"userName eq "x" or externalId eq "00u1""#));
        assert!(matches(
            r#"not (userName eq "x") and (active eq true or active eq false)"#
        ));
        assert!(matches(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701""#
        ));
        assert!(!matches("title pr"));
        assert!(matches("name.givenName pr"));
        assert!(!matches(r#"id eq "U-1""#), "ids compare exactly");
        assert!(matches(r#"userName ne "someone""#));
    }

    #[test]
    fn malformed_filters_are_errors() {
        for bad in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName eq "x"#,
            r#"userName like "x""#,
            r#"(userName eq "x""#,
            r#"userName eq "x" and"#,
            r#"userName eq "x" extra"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
