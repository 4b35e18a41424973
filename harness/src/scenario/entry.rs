//! `[[fault]]` and `[[infra]]` entries: the fields every entry has, then the fields of its kind.
//!
//! The kind's fields are read by the kind's own serde declaration (see [`crate::kind`]); this
//! module only splits the entry, names unknown fields with the kind's real ones, and positions
//! every problem.

use super::diagnostic::Diagnostics;
use crate::kind::{KindDoc, Kinds};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::{
    Spanned,
    de::{DeTable, DeValue, ValueDeserializer},
};

/// One entry of an array of tables, with positions.
pub(super) type Entry<'i> = Spanned<DeTable<'i>>;

/// An entry read: its common fields `C` and its kind `K` (`None` when the kind's part has
/// problems, already reported).
pub(super) struct Parsed<C, K> {
    /// Fields every entry has.
    pub common: C,
    /// The kind, with its own fields.
    pub action: Option<K>,
}

/// Takes the array of tables `key` (`fault`, `infra`) out of the document.
pub(super) fn take<'i>(table: &mut DeTable<'i>, key: &str, d: &mut Diagnostics<'_>) -> Vec<Entry<'i>> {
    let Some(value) = table.remove(key) else {
        return Vec::new();
    };
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        d.error(span, format!("`{key}` must be an array of tables: write [[{key}]]"));
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item.get_ref() {
            DeValue::Table(t) => Some(Spanned::new(item.span(), t.clone())),
            _ => {
                d.error(
                    item.span(),
                    format!("each `{key}` entry must be a table: write [[{key}]]"),
                );
                None
            }
        })
        .collect()
}

/// Reads one entry of the family `K` ("fault kind", "infrastructure fault kind"): the common
/// fields into `C`, then the kind named by `kind_of(&C)` from the remaining fields.
pub(super) fn parse<C, K>(
    entry: &Entry<'_>,
    what: &str,
    kind_of: impl Fn(&C) -> &Spanned<String>,
    d: &mut Diagnostics<'_>,
) -> Option<Parsed<C, K>>
where
    C: DeserializeOwned + JsonSchema,
    K: Kinds,
{
    let span = entry.span();
    let common_names: Vec<String> = KindDoc::of::<C>("").fields.into_iter().map(|f| f.name).collect();
    let (mut common, mut own) = (DeTable::new(), DeTable::new());
    for (key, value) in entry.get_ref().iter() {
        let part = if common_names.iter().any(|n| n == key.get_ref().as_ref()) {
            &mut common
        } else {
            &mut own
        };
        part.insert(key.clone(), value.clone());
    }
    let common: C = deserialize(common, span.clone(), d)?;
    let fields: Vec<(String, Range<usize>)> = own.iter().map(|(k, v)| (k.get_ref().to_string(), v.span())).collect();
    let action = kind_part::<K>(own, span, kind_of(&common), &fields, what, d);
    Some(Parsed { common, action })
}

/// Reads the kind's own fields: each must be one of the kind's (for its variant), then the
/// kind's declaration reads them and its `validate` checks them.
fn kind_part<K: Kinds>(
    own: DeTable<'_>,
    span: Range<usize>,
    kind: &Spanned<String>,
    fields: &[(String, Range<usize>)],
    what: &str,
    d: &mut Diagnostics<'_>,
) -> Option<K> {
    let Some(doc) = K::docs().into_iter().find(|k| k.name == kind.get_ref()) else {
        d.error(
            kind.span(),
            format!(
                "unknown {what} `{}`, expected one of: {}",
                kind.get_ref(),
                K::NAMES.join(", ")
            ),
        );
        return None;
    };
    let value_of = |name: &str| own.get(name).and_then(|v| v.get_ref().as_str()).map(str::to_owned);
    let mut known = true;
    for (name, at) in fields {
        let problem = match doc.fields.iter().find(|f| &f.name == name) {
            None => {
                let allowed: Vec<String> = doc.fields.iter().map(|f| format!("`{}`", f.name)).collect();
                let allowed = if allowed.is_empty() {
                    "it has no fields of its own".to_owned()
                } else {
                    format!("its fields are {}", allowed.join(", "))
                };
                Some(format!("`{name}` does not apply to {what} `{}`: {allowed}", doc.name))
            }
            Some(f) => f
                .only_with
                .as_ref()
                .filter(|(tag, value)| value_of(tag).as_ref() != Some(value))
                .map(|(tag, value)| format!("`{name}` applies to {tag} `{value}` only")),
        };
        if let Some(message) = problem {
            d.error(at.clone(), message);
            known = false;
        }
    }
    if !known {
        return None;
    }
    let parsed = K::parse(
        doc.name,
        ValueDeserializer::from(Spanned::new(span, DeValue::Table(own))),
    )?;
    let action = parsed
        .map_err(|e| d.error(e.span().unwrap_or(kind.span()), explain(e.message(), &doc)))
        .ok()?;
    if let Err(e) = action.validate() {
        let at = fields
            .iter()
            .find(|(name, _)| name == e.field)
            .map(|(_, span)| span.clone());
        d.error(at.unwrap_or(kind.span()), e.message);
        return None;
    }
    Some(action)
}

/// Deserializes a table, reporting the problem at its position.
fn deserialize<T: DeserializeOwned>(table: DeTable<'_>, span: Range<usize>, d: &mut Diagnostics<'_>) -> Option<T> {
    T::deserialize(ValueDeserializer::from(Spanned::new(
        span.clone(),
        DeValue::Table(table),
    )))
    .map_err(|e| d.error(e.span().unwrap_or(span), e.message().trim().to_owned()))
    .ok()
}

/// serde's message, with the missing field's documentation added.
fn explain(message: &str, doc: &KindDoc) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .and_then(|name| doc.fields.iter().find(|f| f.name == name));
    match missing {
        Some(f) => format!("kind `{}` needs `{}` ({}): {}", doc.name, f.name, f.ty, f.doc),
        None => message.trim().to_owned(),
    }
}
