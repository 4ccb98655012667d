//! Integers as JSON Schema reads them: a schema `integer` admits `8.0` as well as `8`,
//! so every integer field of a request body accepts both.

use serde::Deserialize;

/// An optional non-negative integer as JSON Schema reads one: `8` and `8.0` alike.
pub(crate) fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let value = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
            .map(|f| f as u64)
    });
    let value = value.ok_or_else(|| D::Error::custom(format!("{n} is not a whole number ≥ 0")))?;
    T::try_from(value)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{n} is out of range")))
}
