//! The value of `#[agent(external_id = expr)]`: the run's id in another system, read from a
//! string, a number, or an `Option` of either (`None`: no id for this run).

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// What `#[agent(external_id = expr)]` accepts.
#[diagnostic::on_unimplemented(
    message = "`external_id` must be a string, an integer or an `Option` of one, not `{Self}`",
    label = "not usable as an external id",
    note = "convert it first, e.g. `external_id = value.to_string()`"
)]
pub trait ExternalId {
    /// The id, `None` for none.
    fn external_id(&self) -> Option<String>;
}

impl ExternalId for str {
    fn external_id(&self) -> Option<String> {
        Some(self.to_owned())
    }
}

macro_rules! through_str {
    ($($ty:ty),*) => {$(
        impl ExternalId for $ty {
            fn external_id(&self) -> Option<String> {
                str::external_id(self)
            }
        }
    )*};
}

through_str!(String, Box<str>, Rc<str>, Arc<str>, Cow<'_, str>);

macro_rules! integers {
    ($($ty:ty),*) => {$(
        impl ExternalId for $ty {
            fn external_id(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

integers!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl<T: ExternalId + ?Sized> ExternalId for &T {
    fn external_id(&self) -> Option<String> {
        T::external_id(self)
    }
}

impl<T: ExternalId> ExternalId for Option<T> {
    fn external_id(&self) -> Option<String> {
        self.as_ref().and_then(T::external_id)
    }
}

/// The id `value` gives, for the generated code.
///
/// ```
/// use prefactor::__private::external_id;
/// assert_eq!(external_id(&"job-42"), Some("job-42".to_owned()));
/// assert_eq!(external_id(&42_u64), Some("42".to_owned()));
/// assert_eq!(external_id(&None::<String>), None);
/// ```
pub fn external_id<T: ExternalId + ?Sized>(value: &T) -> Option<String> {
    value.external_id()
}
