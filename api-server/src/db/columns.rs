//! How domain types and the schema's encodings are read from a column, so row types can
//! `#[derive(sqlx::FromRow)]` instead of reading each column by hand.
//!
//! The schema has only BIGINT and TEXT columns (one migration for SQLite and PostgreSQL), so each decoder
//! reads one of those through the `Any` driver and builds the domain value. Values in the database were
//! validated when they were written, hence the `from_stored` constructors. The impls live here, not in
//! `domain`, so the domain types stay free of the database.

use crate::domain::{FaxNumber, JobId, Timestamp};
use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Any, Decode, Type};

/// Implements `Type<Any>` and `Decode<Any>` for `$t`, read as `$raw` and converted with `$from`.
macro_rules! decode_as {
    ($t:ty, $raw:ty, $from:expr) => {
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <$raw as Type<Any>>::type_info()
            }

            fn compatible(ty: &AnyTypeInfo) -> bool {
                <$raw as Type<Any>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
                let raw = <$raw as Decode<'r, Any>>::decode(value)?;
                Ok($from(raw))
            }
        }
    };
}

decode_as!(JobId, String, JobId::from_stored);
decode_as!(FaxNumber, String, FaxNumber::from_stored);
// Microseconds since the Unix epoch.
decode_as!(Timestamp, i64, Timestamp::from_micros);
decode_as!(Flag, i64, |n: i64| Flag(n != 0));
decode_as!(CommaList, String, |s: String| CommaList(
    s.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
));

/// A BIGINT 0/1 column (the schema has no BOOLEAN, which SQLite lacks); read with
/// `#[sqlx(try_from = "Flag")]` into a `bool`.
pub struct Flag(bool);

impl From<Flag> for bool {
    fn from(f: Flag) -> bool {
        f.0
    }
}

/// A TEXT column holding a comma-separated list (API-key scopes); read with
/// `#[sqlx(try_from = "CommaList")]` into a `Vec<String>`. Empty items are dropped.
pub struct CommaList(Vec<String>);

impl From<CommaList> for Vec<String> {
    fn from(l: CommaList) -> Vec<String> {
        l.0
    }
}
