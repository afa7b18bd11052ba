//! Typed ids of spans and agent instances (client-generated PFIDs).

use std::fmt;
use std::str::FromStr;

use prefactor_protocol::{Pfid, PfidError};

macro_rules! pfid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Pfid);

        impl $name {
            /// Wraps an existing PFID.
            pub const fn from_pfid(pfid: Pfid) -> Self {
                $name(pfid)
            }

            /// The underlying PFID.
            pub const fn pfid(&self) -> Pfid {
                self.0
            }

            /// A fresh id in `partition` (time-ordered).
            pub fn generate(partition: u32) -> Self {
                $name(Pfid::generate(partition))
            }
        }

        impl From<Pfid> for $name {
            fn from(pfid: Pfid) -> Self {
                $name(pfid)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = PfidError;
            fn from_str(s: &str) -> Result<Self, PfidError> {
                s.parse().map($name)
            }
        }
    };
}

pfid_newtype!(
    /// The id of a span, generated on the client and known as soon as the span is opened.
    ///
    /// ```
    /// use prefactor_runtime::SpanId;
    ///
    /// let id = SpanId::generate(7);
    /// assert_eq!(id.pfid().partition(), 7);
    /// assert_eq!(id.to_string().parse::<SpanId>().unwrap(), id);
    /// ```
    SpanId
);

pfid_newtype!(
    /// The id of an agent instance, generated on the client and sent as `id` at registration.
    ///
    /// ```
    /// use prefactor_runtime::InstanceId;
    ///
    /// let id = InstanceId::generate(3);
    /// assert_eq!(id.to_string().len(), 32);
    /// ```
    InstanceId
);
