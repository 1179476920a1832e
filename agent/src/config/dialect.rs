//! `[[modem]] dialect`: `auto` or one dialect by its name, read and refused with exactly the
//! words serde's derived enum used (the accepted names come from the one `Dialect` list).

use std::fmt;
use std::sync::OnceLock;

use gsmgw_drivers::modem::Dialect;
use serde::{Deserialize, Serialize};

/// Which modem dialect to use for a slot: `auto` (detect it) or one [`Dialect`] by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DialectChoice {
    /// Detect from the modem's identity (AT+CGMI/AT+CGMM).
    #[default]
    Auto,
    /// Always this dialect (`generic`: plain 3GPP 27.005/27.007 commands only).
    Forced(Dialect),
}

impl DialectChoice {
    /// The dialect to force; None: detect it.
    pub fn forced(self) -> Option<Dialect> {
        match self {
            DialectChoice::Auto => None,
            DialectChoice::Forced(d) => Some(d),
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DialectChoice::Auto => "auto",
            DialectChoice::Forced(d) => d.as_str(),
        }
    }

    /// Every accepted spelling, `auto` first, then the dialects in their declaration order.
    fn names() -> &'static [&'static str] {
        static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
        NAMES.get_or_init(|| {
            std::iter::once("auto")
                .chain(Dialect::ALL.iter().map(|d| d.as_str()))
                .collect()
        })
    }

    /// The choice spelt `name` (exact, lower case as in the config file).
    fn from_name(name: &str) -> Option<DialectChoice> {
        if name == "auto" {
            return Some(DialectChoice::Auto);
        }
        Dialect::ALL
            .iter()
            .find(|d| d.as_str() == name)
            .map(|d| DialectChoice::Forced(*d))
    }
}

impl Serialize for DialectChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// Read as serde reads a derived enum of unit variants (`auto`, `generic`, ...), so that its
// error messages ("unknown variant `nokia`, expected one of ...") stay what they always were.
impl<'de> Deserialize<'de> for DialectChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, DeserializeSeed, EnumAccess, Unexpected, VariantAccess, Visitor};

        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = DialectChoice;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("variant identifier")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DialectChoice, E> {
                let names = DialectChoice::names();
                usize::try_from(v)
                    .ok()
                    .and_then(|i| names.get(i))
                    .and_then(|n| DialectChoice::from_name(n))
                    .ok_or_else(|| {
                        let expected = format!("variant index 0 <= i < {}", names.len());
                        E::invalid_value(Unexpected::Unsigned(v), &expected.as_str())
                    })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DialectChoice, E> {
                DialectChoice::from_name(v)
                    .ok_or_else(|| E::unknown_variant(v, DialectChoice::names()))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<DialectChoice, E> {
                let v = String::from_utf8_lossy(v);
                self.visit_str(&v)
            }
        }
        impl<'de> DeserializeSeed<'de> for Name {
            type Value = DialectChoice;
            fn deserialize<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<DialectChoice, D::Error> {
                d.deserialize_identifier(self)
            }
        }

        struct Choice;
        impl<'de> Visitor<'de> for Choice {
            type Value = DialectChoice;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("enum DialectChoice")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<DialectChoice, A::Error> {
                let (choice, variant) = data.variant_seed(Name)?;
                variant.unit_variant()?;
                Ok(choice)
            }
        }

        deserializer.deserialize_enum("DialectChoice", DialectChoice::names(), Choice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enum `modem.dialect` was read into before it used the drivers' [`Dialect`]: the new
    /// type must accept, refuse and word its errors exactly as this derived one did.
    mod former {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        #[allow(dead_code)]
        pub enum DialectChoice {
            Auto,
            Generic,
            Quectel,
            Simcom,
            Huawei,
            Zte,
            Simcom2g,
            Telit,
            Ublox,
            Sierra,
            Fibocom,
        }
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct New {
        dialect: DialectChoice,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Old {
        dialect: former::DialectChoice,
    }

    #[test]
    fn reads_and_refuses_like_the_former_enum() {
        for value in [
            "\"auto\"",
            "\"generic\"",
            "\"quectel\"",
            "\"simcom\"",
            "\"huawei\"",
            "\"zte\"",
            "\"simcom2g\"",
            "\"telit\"",
            "\"ublox\"",
            "\"sierra\"",
            "\"fibocom\"",
            "\"u-blox\"",
            "\"nokia\"",
            "\"Quectel\"",
            "\"\"",
            "3",
            "0",
            "true",
            "1.5",
            "[\"quectel\"]",
            "{ quectel = 1 }",
            "{ quectel = {} }",
        ] {
            let doc = format!("dialect = {value}\n");
            let new = toml::from_str::<New>(&doc).map_err(|e| e.message().to_string());
            let old = toml::from_str::<Old>(&doc).map_err(|e| e.message().to_string());
            assert_eq!(new.is_ok(), old.is_ok(), "{value}: {new:?} vs {old:?}");
            if let (Err(n), Err(o)) = (&new, &old) {
                assert_eq!(n, o, "{value}");
            }
            if let (Ok(n), Ok(o)) = (new, old) {
                assert_eq!(
                    n.dialect.as_str(),
                    format!("{:?}", o.dialect).to_lowercase()
                );
            }
        }
        assert_eq!(
            toml::from_str::<New>("dialect = \"huawei\"\n")
                .map(|n| n.dialect)
                .map_err(|e| e.to_string()),
            Ok(DialectChoice::Forced(Dialect::Huawei))
        );
    }

    #[test]
    fn writes_the_config_spelling() {
        #[derive(Serialize)]
        struct W {
            dialect: DialectChoice,
        }
        for (choice, text) in [
            (DialectChoice::Auto, "dialect = \"auto\"\n"),
            (
                DialectChoice::Forced(Dialect::Simcom),
                "dialect = \"simcom\"\n",
            ),
        ] {
            assert_eq!(
                toml::to_string(&W { dialect: choice }).ok().as_deref(),
                Some(text)
            );
        }
        assert_eq!(DialectChoice::default().forced(), None);
        assert_eq!(
            DialectChoice::Forced(Dialect::Quectel).forced(),
            Some(Dialect::Quectel)
        );
    }
}
