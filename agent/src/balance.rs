//! Reading the money left on a SIM out of the operator's USSD answer.
//!
//! Operators answer in their own words, in Latin transliteration, Ukrainian, Russian or English
//! (`Zalyshok 3.00 grn`, `На рахунку 12,00 грн.`, `Balance: 5,10 UAH`), with negative balances
//! (a minus sign or a word for debt), comma or dot decimals, and often bonus or package amounts
//! after the main one. The parser is table-driven: the generic vocabulary below, plus per
//! operator (by MCC-MNC prefix) its own words and the currency it means when it names none. A
//! configured `balance_regex` overrides all of it.

use regex::Regex;
use serde::Serialize;

/// The money on a SIM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balance {
    /// The main balance; negative when the SIM owes.
    pub amount: f64,
    /// ISO 4217 code when the text (or the operator) names the currency.
    pub currency: Option<String>,
}

/// Words that introduce the main balance (lower case).
const BALANCE_WORDS: &[&str] = &[
    "balance",
    "balans",
    "zalyshok",
    "zalishok",
    "zalyshku",
    "ostatok",
    "na rahunku",
    "na rakhunku",
    "rahunok",
    "rakhunok",
    "na schetu",
    "na schete",
    "credit",
    "баланс",
    "залишок",
    "на рахунку",
    "рахунок",
    "остаток",
    "на счету",
    "на счёте",
    "счет",
    "счёт",
];

/// Words that say the amount after them is owed.
const DEBT_WORDS: &[&str] = &[
    "minus",
    "debt",
    "borg",
    "zaborgovanist",
    "zadolzhennost",
    "мінус",
    "минус",
    "борг",
    "заборгованість",
    "задолженность",
    "долг",
];

/// Words that introduce an amount that is not the main balance.
const OTHER_AMOUNT_WORDS: &[&str] = &[
    "bonus",
    "bonusy",
    "bonusnyi",
    "bonusnyy",
    "paket",
    "package",
    "tarif",
    "tariff",
    "limit",
    "бонус",
    "пакет",
    "тариф",
    "ліміт",
    "лимит",
];

/// Units after a number that make it a package, not money.
const UNITS: &[&str] = &[
    "mb", "gb", "kb", "мб", "гб", "кб", "min", "хв", "мин", "hv", "khv", "sms", "смс", "шт", "%",
    "dn", "дн", "дні", "days", "day",
];

/// How currencies are written → ISO 4217.
const CURRENCIES: &[(&str, &str)] = &[
    ("uah", "UAH"),
    ("grn", "UAH"),
    ("hrn", "UAH"),
    ("грн", "UAH"),
    ("₴", "UAH"),
    ("rub", "RUB"),
    ("руб", "RUB"),
    ("р.", "RUB"),
    ("₽", "RUB"),
    ("byn", "BYN"),
    ("kzt", "KZT"),
    ("тг", "KZT"),
    ("₸", "KZT"),
    ("pln", "PLN"),
    ("zł", "PLN"),
    ("zl", "PLN"),
    ("usd", "USD"),
    ("$", "USD"),
    ("eur", "EUR"),
    ("€", "EUR"),
    ("gel", "GEL"),
    ("mdl", "MDL"),
    ("lei", "MDL"),
];

/// An operator's own vocabulary.
#[derive(Debug, Clone, Copy)]
pub struct Operator {
    /// MCC-MNC prefix (`25503`, or `255` for a whole country).
    pub mcc_mnc: &'static str,
    /// Who it is (for people reading the table).
    pub name: &'static str,
    /// The currency its answers mean when they name none.
    pub currency: &'static str,
    /// Extra words that introduce its main balance.
    pub balance_words: &'static [&'static str],
}

/// Known operators; the first matching prefix wins, so networks come before their country.
pub const OPERATORS: &[Operator] = &[
    Operator {
        mcc_mnc: "25503",
        name: "Kyivstar",
        currency: "UAH",
        balance_words: &["na rahunku", "na vashomu rahunku"],
    },
    Operator {
        mcc_mnc: "25501",
        name: "Vodafone Ukraine",
        currency: "UAH",
        balance_words: &["vash balans", "na vashomu rahunku"],
    },
    Operator {
        mcc_mnc: "25506",
        name: "lifecell",
        currency: "UAH",
        balance_words: &["osnovnyi rakhunok", "osnovnyi rahunok", "основний рахунок"],
    },
    Operator {
        mcc_mnc: "255",
        name: "Ukraine",
        currency: "UAH",
        balance_words: &[],
    },
    Operator {
        mcc_mnc: "250",
        name: "Russia",
        currency: "RUB",
        balance_words: &["ваш баланс"],
    },
    Operator {
        mcc_mnc: "257",
        name: "Belarus",
        currency: "BYN",
        balance_words: &[],
    },
    Operator {
        mcc_mnc: "401",
        name: "Kazakhstan",
        currency: "KZT",
        balance_words: &[],
    },
    Operator {
        mcc_mnc: "260",
        name: "Poland",
        currency: "PLN",
        balance_words: &["stan konta", "saldo"],
    },
    Operator {
        mcc_mnc: "259",
        name: "Moldova",
        currency: "MDL",
        balance_words: &["sold"],
    },
];

/// A `balance_regex` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BalanceRegexError {
    /// It does not compile.
    #[error("balance_regex: {0}")]
    Syntax(#[from] regex::Error),
    /// It has no group to take the amount from.
    #[error("balance_regex needs a capture group for the amount (e.g. (?P<amount>-?[0-9.,]+))")]
    NoGroup,
}

/// The parser: the tables above, or a configured regex.
#[derive(Debug, Clone)]
pub struct BalanceParser {
    custom: Option<Regex>,
    number: Regex,
    noise: Regex,
}

fn operator(mcc_mnc: Option<&str>) -> Option<&'static Operator> {
    let code: String = mcc_mnc?.chars().filter(char::is_ascii_digit).collect();
    if code.is_empty() {
        return None;
    }
    OPERATORS.iter().find(|o| code.starts_with(o.mcc_mnc))
}

/// The amount of `s` (`12,00`, `-3.5`, `1 234.50`), if it is one.
fn amount_of(s: &str) -> Option<f64> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .map(|c| if c == ',' { '.' } else { c })
        .map(|c| if c == '−' { '-' } else { c })
        .collect();
    let v: f64 = cleaned.parse().ok()?;
    v.is_finite().then_some(v)
}

fn currency_in(s: &str) -> Option<&'static str> {
    let lower = s.to_lowercase();
    let lower = lower.trim_start();
    CURRENCIES
        .iter()
        .find(|(w, _)| lower.starts_with(w))
        .map(|(_, iso)| *iso)
}

impl BalanceParser {
    /// A parser; `custom` is the configured `balance_regex`, with a group `amount` (or its
    /// first group) and optionally a group `currency`.
    pub fn new(custom: Option<&str>) -> Result<BalanceParser, BalanceRegexError> {
        let custom = match custom {
            None => None,
            Some(r) => {
                let re = Regex::new(r)?;
                if re.captures_len() < 2 {
                    return Err(BalanceRegexError::NoGroup);
                }
                Some(re)
            }
        };
        Ok(BalanceParser {
            custom,
            // A sign (or dash), then digits with an optional decimal part; thousands split by a
            // space are rare in USSD and not read as one number.
            number: Regex::new(r"(?P<sign>[-−])?(?P<num>\d+(?:[.,]\d+)?)")?,
            // Dates, times and long digit runs (phone numbers, serials) are never amounts.
            noise: Regex::new(r"\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?|\+?\d{7,}")?,
        })
    }

    /// The main balance in `text`, sent by the operator with MCC-MNC `operator` (if known).
    pub fn parse(&self, text: &str, mcc_mnc: Option<&str>) -> Option<Balance> {
        let op = operator(mcc_mnc);
        if let Some(re) = &self.custom {
            let caps = re.captures(text)?;
            let amount = caps
                .name("amount")
                .or_else(|| caps.get(1))
                .and_then(|m| amount_of(m.as_str()))?;
            let currency = caps
                .name("currency")
                .and_then(|m| currency_in(m.as_str()).map(str::to_string))
                .or_else(|| op.map(|o| o.currency.to_string()));
            return Some(Balance { amount, currency });
        }
        let lower = text.to_lowercase();
        // Blank out noise so its digits are not candidates (same length keeps offsets).
        let cleaned = self.noise.replace_all(&lower, |c: &regex::Captures<'_>| {
            c.get(0)
                .map(|m| "x".repeat(m.as_str().len()))
                .unwrap_or_default()
        });
        let mut balance_words: Vec<&str> = BALANCE_WORDS.to_vec();
        if let Some(o) = op {
            balance_words.extend(o.balance_words.iter().copied());
        }
        let mut best: Option<(u8, Balance)> = None;
        let mut prev_end = 0;
        for m in self.number.captures_iter(&cleaned) {
            let (Some(whole), Some(num)) = (m.get(0), m.name("num")) else {
                continue;
            };
            let after = cleaned.get(whole.end()..).unwrap_or("");
            let after_trim = after.trim_start();
            let unit = UNITS.iter().any(|u| {
                after_trim.starts_with(u)
                    && !after_trim
                        .get(u.len()..)
                        .and_then(|r| r.chars().next())
                        .is_some_and(char::is_alphabetic)
            });
            let start = whole.start();
            // What stands between the previous number and this one says what this one is.
            let window = cleaned.get(prev_end..start).unwrap_or("");
            prev_end = whole.end();
            if unit {
                continue;
            }
            let other = OTHER_AMOUNT_WORDS.iter().any(|w| window.contains(w));
            let keyword = balance_words.iter().any(|w| window.contains(w));
            let currency = currency_in(after);
            if other && !keyword {
                continue;
            }
            let debt = DEBT_WORDS.iter().any(|w| window.contains(w));
            let Some(mut amount) = amount_of(num.as_str()) else {
                continue;
            };
            if m.name("sign").is_some() || debt {
                amount = -amount.abs();
            }
            // The best candidate: introduced by a balance word, else followed by a currency;
            // the first of each rank wins.
            let rank = match (keyword, currency.is_some()) {
                (true, true) => 4,
                (true, false) => 3,
                (false, true) => 2,
                // A bare number ("request 5 accepted", a menu's "1") is not money.
                (false, false) => continue,
            };
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((
                    rank,
                    Balance {
                        amount,
                        currency: currency
                            .or_else(|| op.map(|o| o.currency))
                            .map(str::to_string),
                    },
                ));
            }
        }
        best.map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, op: Option<&str>) -> Option<(f64, Option<String>)> {
        BalanceParser::new(None)
            .ok()?
            .parse(text, op)
            .map(|b| (b.amount, b.currency))
    }

    fn uah(v: f64) -> Option<(f64, Option<String>)> {
        Some((v, Some("UAH".to_string())))
    }

    #[test]
    fn what_operators_send() {
        assert_eq!(parse("Zalyshok 3.00 grn", None), uah(3.0));
        assert_eq!(parse("На рахунку 12,00 грн.", None), uah(12.0));
        assert_eq!(parse("Balance: 5,10 UAH", None), uah(5.1));
        assert_eq!(
            parse(
                "Na rahunku 45.67 grn. Bonusy: 10.00 grn. Dijsnyj do 31.12.2026",
                Some("25503")
            ),
            uah(45.67)
        );
        assert_eq!(
            parse(
                "Osnovnyi rakhunok: 10.50hrn. Bonusnyi rakhunok: 0.00hrn. Internet: 500MB",
                Some("25506")
            ),
            uah(10.5)
        );
        assert_eq!(
            parse("Paket 300 MB, 100 hv. Vash balans 27.40 grn", Some("25501")),
            uah(27.4)
        );
        assert_eq!(
            parse("Ваш баланс -12,30 руб.", Some("25001")),
            Some((-12.3, Some("RUB".to_string())))
        );
        assert_eq!(parse("Balans: minus 4.20 grn", None), uah(-4.2));
        assert_eq!(parse("Заборгованість 7,5 грн", None), uah(-7.5));
        // No currency in the text: the operator's.
        assert_eq!(parse("Balance 17.25", Some("25503")), uah(17.25));
        assert_eq!(parse("Balance 17.25", None), Some((17.25, None)));
        // Dates, times and phone numbers are not balances.
        assert_eq!(
            parse(
                "Your number +380501234567. 01.12.2026 12:30 Balance 3.25 USD",
                None
            ),
            Some((3.25, Some("USD".to_string())))
        );
        assert_eq!(parse("Dyakuyemo! Zapyt pryinyato.", None), None);
        assert_eq!(parse("Zapyt 5 pryinyato", Some("25503")), None);
        assert_eq!(parse("", None), None);
    }

    #[test]
    fn a_configured_regex_overrides() {
        let p = BalanceParser::new(Some(
            r"Credit=(?P<amount>-?\d+(?:[.,]\d+)?)(?P<currency>\w+)?",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let b = p.parse("Bonus 99 grn; Credit=-1,5EUR", Some("25503"));
        assert_eq!(
            b,
            Some(Balance {
                amount: -1.5,
                currency: Some("EUR".into())
            })
        );
        assert_eq!(p.parse("nothing", None), None);
        assert!(matches!(
            BalanceParser::new(Some("Credit=")),
            Err(BalanceRegexError::NoGroup)
        ));
        assert!(matches!(
            BalanceParser::new(Some("(")),
            Err(BalanceRegexError::Syntax(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let p = BalanceParser::new(None).unwrap_or_else(|e| panic!("{e}"));
        for t in [
            "-",
            "--1",
            "1,",
            ",5",
            "9".repeat(400).as_str(),
            "\u{0}\u{FFFD}грн",
            "балансбаланс",
        ] {
            let _ = p.parse(t, Some("x"));
            let _ = p.parse(t, Some("25503"));
        }
    }
}
