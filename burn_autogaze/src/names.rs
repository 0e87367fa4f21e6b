//! One definition of the "enum with command-line names" pattern: `ALL`,
//! `as_str`, `Display` and `FromStr` (with an error listing the choices),
//! shared by every setting the CLI, the perf summaries and URL parameters
//! name (sources, geometry, dispatch, mask source, compose path).

/// Defines a fieldless enum whose variants have command-line names.
///
/// Exported (hidden) for the Bevy plugin's own settings; not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The command-line name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::AutoGazeError;

            fn from_str(s: &str) -> $crate::error::Result<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
                    $crate::error::AutoGazeError::InvalidSetting {
                        what: $what,
                        value: s.to_string(),
                        expected: format!("one of {}", [$($text),+].join(", ")),
                    }
                })
            }
        }
    };
}

pub(crate) use crate::named_enum;
