//! The principal of a TLS client certificate: its subject as an RFC 4514 name, mapped by Kafka's `ssl.principal.mapping.rules`.
//!
//! Rules are tried in order: `RULE:pattern/replacement/` (optionally `L` or `U` after the last
//! `/` to lower- or upper-case) applies when `pattern` matches the whole name, and gives the
//! name with every match replaced; `DEFAULT` gives the name unchanged. No rule applying means the
//! name unchanged. `RULE:^CN=(.*?),OU=.*$/$1/` turns `CN=alice,OU=eng,O=Floe` into `alice`.

use regex::Regex;
use x509_cert::der::Decode;

/// A certificate's subject, RFC 4514 (most specific first, as Kafka prints it).
pub fn subject(der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map { full: Regex, pattern: Regex, replacement: String, case: Option<char> },
}

/// Parsed `ssl_principal_mapping_rules`.
#[derive(Debug, Clone)]
pub struct PrincipalRules(Vec<Rule>);

impl PrincipalRules {
    /// Parses rules separated by commas or newlines; an error names the rule.
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = r.trim_start_matches([',', '\n', ' ']);
                continue;
            }
            let body = rest.strip_prefix("RULE:").ok_or_else(|| format!("a mapping rule must be DEFAULT or RULE:pattern/replacement/: {rest:?}"))?;
            let mut parts = body.splitn(3, '/');
            let (Some(pattern), Some(replacement), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("a mapping rule is RULE:pattern/replacement/[LU]: {rest:?}"));
            };
            let (case, after) = match tail.chars().next() {
                Some(c @ ('L' | 'U')) => (Some(c), &tail[1..]),
                _ => (None, tail),
            };
            let full = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("mapping rule pattern {pattern:?}: {e}"))?;
            let pattern = Regex::new(pattern).map_err(|e| format!("mapping rule pattern {pattern:?}: {e}"))?;
            rules.push(Rule::Map { full, pattern, replacement: replacement.to_string(), case });
            rest = after.trim_start_matches([',', '\n', ' ']);
        }
        Ok(PrincipalRules(rules))
    }

    /// The principal name for a certificate subject.
    pub fn apply(&self, dn: &str) -> String {
        for r in &self.0 {
            match r {
                Rule::Default => return dn.to_string(),
                Rule::Map { full, pattern, replacement, case } if full.is_match(dn) => {
                    let out = pattern.replace_all(dn, replacement.as_str()).into_owned();
                    return match case {
                        Some('L') => out.to_lowercase(),
                        Some('U') => out.to_uppercase(),
                        _ => out,
                    };
                }
                Rule::Map { .. } => {}
            }
        }
        dn.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_rules_map_subjects() {
        let r = PrincipalRules::parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT").expect("rules");
        assert_eq!(r.apply("CN=kafka1,OU=ServiceUsers,O=Org"), "kafka1");
        assert_eq!(r.apply("CN=Duke,OU=JavaSoft,O=Sun Microsystems"), "duke@javasoft");
        assert_eq!(r.apply("CN=x,O=y"), "CN=x,O=y", "DEFAULT");
        assert_eq!(PrincipalRules::parse("").expect("none").apply("CN=a"), "CN=a");
        let upper = PrincipalRules::parse("RULE:^CN=([a-z]+)$/$1/U").expect("U");
        assert_eq!(upper.apply("CN=abc"), "ABC");
        assert_eq!(upper.apply("CN=abc,O=z"), "CN=abc,O=z", "a partial match does not apply");
        for bad in ["RULE:^CN=(.*$/$1/", "RULE:x", "SOMETHING"] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(subject(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(subject(&[]), None);
    }
}
