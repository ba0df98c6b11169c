//! The language of a page: Vietnamese unless the reader asks for English
//! (`?lang=en`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// Tiếng Việt, the default.
    #[default]
    Vi,
    En,
}

impl Lang {
    /// `"vi"`, `"en"`; anything else (or nothing) is Vietnamese.
    pub fn parse(s: Option<&str>) -> Lang {
        match s.map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Vi,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// Picks the text of this language.
    pub fn t<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}
