//! Free text people send the API: an item's name and description, an admin's reason, a
//! display name. One set of rules for all of it, so a text that is fine in one place cannot
//! poison another (a NUL that PostgreSQL refuses, an escape sequence that rewrites a log line or
//! a viewer's terminal, a bidirectional override that makes a name read backwards).
//!
//! Every text is counted in characters (Unicode scalar values), not bytes. Single-line texts
//! are trimmed and refuse every control character; a description keeps its line breaks
//! (`\r\n` becomes `\n`) and tabs. Nowhere are the C0/C1 controls (`U+0000`–`U+001F`,
//! `U+007F`–`U+009F`), the bidirectional embedding, override and isolate controls
//! (`U+202A`–`U+202E`, `U+2066`–`U+2069`) or the Unicode line and paragraph separators
//! (`U+2028`, `U+2029`) accepted.

use std::fmt;

/// Longest item name, in characters.
pub const ITEM_NAME_MAX_CHARS: usize = 200;
/// Longest item description, in characters.
pub const ITEM_DESCRIPTION_MAX_CHARS: usize = 5_000;
/// Longest admin reason (a cancellation's), in characters.
pub const REASON_MAX_CHARS: usize = 500;

/// Why a text is refused. The message reads after the field's name: "name must not be empty".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    /// `position` counts characters from 1, in the text as kept (trimmed, or with `\r\n`
    /// made `\n`).
    #[error("must not contain control characters (U+{:04X} at character {position})", u32::from(*found))]
    ControlCharacter { found: char, position: usize },
}

/// The rules of one kind of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRules {
    pub max_chars: usize,
    /// Whether an empty text (after trimming, for a single line) is accepted.
    pub may_be_empty: bool,
    /// Whether `\n` and `\t` are accepted (and `\r\n` normalised to `\n`); single-line texts
    /// are trimmed instead.
    pub multiline: bool,
}

impl TextRules {
    /// A trimmed, non-empty line of at most `max_chars` characters.
    pub const fn line(max_chars: usize) -> Self {
        Self {
            max_chars,
            may_be_empty: false,
            multiline: false,
        }
    }

    /// Applies the rules to `text`, returning the text to keep.
    ///
    /// # Errors
    /// [`TextError`] naming the first rule broken.
    pub fn apply(&self, text: &str) -> Result<String, TextError> {
        let (kept, allowed): (String, &[char]) = if self.multiline {
            (text.replace("\r\n", "\n"), &['\n', '\t'])
        } else {
            (text.trim().to_owned(), &[])
        };
        if let Some((index, found)) = kept
            .chars()
            .enumerate()
            .find(|(_, c)| is_refused(*c) && !allowed.contains(c))
        {
            return Err(TextError::ControlCharacter {
                found,
                position: index + 1,
            });
        }
        if kept.is_empty() && !self.may_be_empty {
            return Err(TextError::Empty);
        }
        if kept.chars().count() > self.max_chars {
            return Err(TextError::TooLong {
                max: self.max_chars,
            });
        }
        Ok(kept)
    }
}

/// Characters no text may hold (see the module's documentation).
fn is_refused(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Defines a validated text type: private field, one fallible constructor.
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $rules:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The rules this text follows.
            pub const RULES: TextRules = $rules;

            /// # Errors
            /// [`TextError`] naming the rule broken.
            pub fn parse(text: &str) -> Result<Self, TextError> {
                Self::RULES.apply(text).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// An item's name: one trimmed line of 1 to 200 characters.
    ItemName,
    TextRules::line(ITEM_NAME_MAX_CHARS)
);

text_type!(
    /// An item's description: up to 5,000 characters, line breaks and tabs allowed, may be
    /// empty.
    ItemDescription,
    TextRules {
        max_chars: ITEM_DESCRIPTION_MAX_CHARS,
        may_be_empty: true,
        multiline: true,
    }
);

text_type!(
    /// Why an admin acted (a cancellation): one trimmed line of 1 to 500 characters.
    Reason,
    TextRules::line(REASON_MAX_CHARS)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(
            ItemName::parse("  Vintage clock ").map(ItemName::into_string),
            Ok("Vintage clock".into())
        );
    }

    #[test]
    fn a_blank_name_is_rejected() {
        assert_eq!(ItemName::parse(" \u{3000} "), Err(TextError::Empty));
    }

    #[test]
    fn a_name_of_two_hundred_and_one_characters_is_rejected() {
        assert!(ItemName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            ItemName::parse(&"é".repeat(201)),
            Err(TextError::TooLong { max: 200 })
        );
    }

    #[test]
    fn a_nul_in_a_reason_is_rejected_with_its_position() {
        let error = Reason::parse("bad\u{0}reason").unwrap_err();
        assert_eq!(
            error,
            TextError::ControlCharacter {
                found: '\0',
                position: 4
            }
        );
        assert_eq!(
            error.to_string(),
            "must not contain control characters (U+0000 at character 4)"
        );
    }

    #[test]
    fn a_line_break_around_a_name_is_trimmed_away() {
        assert_eq!(
            ItemName::parse("\tclock\r\n").map(ItemName::into_string),
            Ok("clock".into())
        );
    }

    #[test]
    fn a_line_break_in_a_name_or_reason_is_rejected() {
        for text in [
            "two\nlines",
            "tab\there",
            "carriage\rreturn",
            "line\u{2028}sep",
        ] {
            assert!(
                matches!(
                    ItemName::parse(text),
                    Err(TextError::ControlCharacter { .. })
                ),
                "{text:?}"
            );
            assert!(Reason::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn an_escape_sequence_or_a_c1_control_is_rejected_everywhere() {
        for text in ["\u{1b}[2J", "next\u{85}line", "del\u{7f}"] {
            assert!(ItemName::parse(text).is_err(), "{text:?}");
            assert!(ItemDescription::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_bidirectional_override_is_rejected() {
        for c in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            assert!(
                ItemName::parse(&format!("abc{c}def")).is_err(),
                "U+{:04X}",
                u32::from(c)
            );
        }
        // Marks that only set a direction are ordinary text.
        assert!(ItemName::parse("abc\u{200F}def").is_ok());
    }

    #[test]
    fn a_description_keeps_line_breaks_and_tabs_and_normalises_crlf() {
        assert_eq!(
            ItemDescription::parse("Line one\r\n\tLine two\n").map(ItemDescription::into_string),
            Ok("Line one\n\tLine two\n".into())
        );
        assert!(ItemDescription::parse("lone\rreturn").is_err());
    }

    #[test]
    fn an_empty_description_is_accepted_and_a_long_one_is_not() {
        assert_eq!(ItemDescription::parse("").map(|d| d.0), Ok(String::new()));
        assert!(ItemDescription::parse(&"x".repeat(5_000)).is_ok());
        assert_eq!(
            ItemDescription::parse(&"x".repeat(5_001)),
            Err(TextError::TooLong { max: 5_000 })
        );
    }

    #[test]
    fn a_reason_of_five_hundred_and_one_characters_is_rejected() {
        assert!(Reason::parse(&"r".repeat(500)).is_ok());
        assert_eq!(
            Reason::parse(&"r".repeat(501)),
            Err(TextError::TooLong { max: 500 })
        );
    }

    #[test]
    fn ordinary_text_in_any_script_is_accepted() {
        for text in ["Taschenuhr, 1890", "古い時計", "ساعة قديمة", "🕰️ clock"] {
            assert_eq!(
                ItemName::parse(text).map(ItemName::into_string),
                Ok(text.into())
            );
        }
    }
}
