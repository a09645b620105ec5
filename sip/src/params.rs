//! Generic `;name=value` parameters, as on URIs, Via, Contact and Event, with quoted values kept apart.

use std::fmt;

use crate::Error;
use crate::scan::{byte_class, is_token, quote, split_once_byte, split_outside_quotes, trim_lws, unquote};

/// One parameter. `value` holds a quoted value without its quotes; `quoted` remembers how to print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
    pub quoted: bool,
}

/// An ordered list of parameters, looked up case-insensitively by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// Parses `;a=b;c;d="e"` (the leading `;` already removed from each item by the caller's split).
    /// Every item must be a token name with an optional token, host or quoted-string value.
    pub(crate) fn parse_items<'a>(items: impl Iterator<Item = &'a str>) -> Result<Params, Error> {
        let mut params = Vec::new();
        for item in items {
            let item = trim_lws(item);
            if item.is_empty() {
                return Err(Error::syntax("parameter", "empty parameter"));
            }
            let (name, value) = match split_once_byte(item, b'=') {
                Some((name, value)) => (trim_lws(name), Some(trim_lws(value))),
                None => (item, None),
            };
            if !is_token(name) {
                return Err(Error::syntax("parameter", format!("bad parameter name {name:?}")));
            }
            let (value, quoted) = match value {
                None => (None, false),
                Some(v) if v.starts_with('"') => match unquote(v) {
                    Some(v) => (Some(v), true),
                    None => return Err(Error::syntax("parameter", format!("bad quoted value in {item:?}"))),
                },
                Some(v) => {
                    let host_like = v.starts_with('[') && v.ends_with(']');
                    if !host_like && !is_param_value(v) {
                        return Err(Error::syntax("parameter", format!("bad value in {item:?}")));
                    }
                    (Some(v.to_owned()), false)
                }
            };
            params.push(Param { name: name.to_owned(), value, quoted });
        }
        Ok(Params(params))
    }

    /// Parses the parameters after a `;`: at least one, so a trailing `;` is an empty parameter.
    pub(crate) fn parse(s: &str) -> Result<Params, Error> {
        Params::parse_items(split_outside_quotes(s, b';'))
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of `name`, or `None` when absent or valueless.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|p| p.value.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a parameter, replacing one of the same name.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let quoted = value.is_some_and(|v| !is_param_value(v));
        let param = Param { name: name.to_owned(), value: value.map(str::to_owned), quoted };
        match self.0.iter_mut().find(|p| p.name.eq_ignore_ascii_case(name)) {
            Some(existing) => *existing = param,
            None => self.0.push(param),
        }
    }

    /// Sets a parameter whose value is always printed quoted (`+sip.instance="<urn:...>"`).
    pub fn set_quoted(&mut self, name: &str, value: &str) {
        self.set(name, Some(value));
        if let Some(p) = self.0.iter_mut().find(|p| p.name.eq_ignore_ascii_case(name)) {
            p.quoted = true;
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Characters a parameter value may hold unquoted: token characters plus those of hosts and
/// URI parameter values (`:` for IPv6 and ports, `[`/`]`, `/`, `@`, `%` escapes).
fn is_param_value(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|c| PARAM_VALUE[usize::from(c)])
}

static PARAM_VALUE: [bool; 256] = byte_class(b"-.!%*_+`'~:[]/@&=$,?", true);

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                if p.quoted {
                    write!(f, "={}", quote(v))?;
                } else {
                    write!(f, "={v}")?;
                }
            }
        }
        Ok(())
    }
}
