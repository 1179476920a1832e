//! Parsing `mqtt.url` into the host, port and TLS flag the MQTT client needs, and checking the
//! form of a `host:port` (the SIP server) without resolving it.

use std::net::SocketAddr;

use super::error::ConfigError;
use super::model::MqttConfig;

/// Default port of `mqtt://`.
pub const MQTT_PORT: u16 = 1883;
/// Default port of `mqtts://`.
pub const MQTTS_PORT: u16 = 8883;

/// Where the broker is, as parsed from `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MqttEndpoint {
    /// True for `mqtts://` (TLS).
    pub tls: bool,
    /// Host name or IP address; IPv6 addresses come without brackets.
    pub host: String,
    /// TCP port (1883 / 8883 when the URL names none).
    pub port: u16,
}

impl MqttConfig {
    /// Parse `url` into host, port and TLS flag.
    pub fn endpoint(&self) -> Result<MqttEndpoint, ConfigError> {
        parse_mqtt_url(&self.url).map_err(ConfigError::MqttUrl)
    }
}

/// Parse `mqtt://HOST[:PORT][/]` or `mqtts://…`; the error explains what is wrong.
///
/// The URL itself is never echoed back: it may carry credentials.
pub(crate) fn parse_mqtt_url(url: &str) -> Result<MqttEndpoint, String> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]".to_owned());
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" => false,
        "mqtts" => true,
        other => {
            return Err(format!(
                "scheme `{other}` is not supported; use mqtt:// or mqtts://"
            ));
        }
    };
    // Accept one trailing slash, nothing else after the authority.
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not supported; use mqtt.username and mqtt.password"
                .to_owned(),
        );
    }
    if authority.contains(['/', '?', '#']) {
        return Err(
            "a path, query or fragment is not supported; use mqtt[s]://HOST[:PORT]".to_owned(),
        );
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("the host is missing; use mqtt[s]://HOST[:PORT]".to_owned());
    }
    let port = match port {
        None => {
            if tls {
                MQTTS_PORT
            } else {
                MQTT_PORT
            }
        }
        Some(text) => parse_port(text)?,
    };
    Ok(MqttEndpoint {
        tls,
        host: host.to_owned(),
        port,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err("unclosed `[` in an IPv6 address".to_owned());
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("unexpected text after `]`; use [ADDRESS]:PORT".to_owned()),
            },
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port {
        if port.contains(':') {
            return Err(
                "an IPv6 address must be written in brackets, e.g. mqtt://[::1]:1883".to_owned(),
            );
        }
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!(
            "the host contains `{bad}`, which is not allowed in a host name"
        ));
    }
    Ok((host, port))
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("the port after `:` is empty".to_owned());
    }
    match text.parse::<u16>() {
        Ok(0) => Err("port 0 is not allowed; use 1..=65535".to_owned()),
        Ok(port) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("`{text}` is not a port number (1..=65535)")),
    }
}

/// Checks the form of `host:port` (a missing port is `default_port`) without resolving it:
/// `config check` runs offline.
pub fn host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok((a.ip().to_string(), a.port()));
    }
    let bad = || format!("`{s}` is not host:port");
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (s, default_port),
    };
    if host.is_empty()
        || port == 0
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Result<MqttEndpoint, String> {
        parse_mqtt_url(url)
    }

    #[test]
    fn defaults_ports_by_scheme() {
        assert_eq!(
            ep("mqtt://broker.local").unwrap(),
            MqttEndpoint {
                tls: false,
                host: "broker.local".into(),
                port: 1883
            }
        );
        assert_eq!(
            ep("mqtts://broker.local/").unwrap(),
            MqttEndpoint {
                tls: true,
                host: "broker.local".into(),
                port: 8883
            }
        );
        assert_eq!(ep("MQTT://10.0.0.1:1884").unwrap().port, 1884);
    }

    #[test]
    fn ipv6_in_brackets() {
        let e = ep("mqtts://[fd00::1]:8884").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("fd00::1", 8884, true));
        assert_eq!(ep("mqtt://[::1]").unwrap().port, 1883);
        assert!(ep("mqtt://::1").unwrap_err().contains("brackets"));
        assert!(ep("mqtt://[::1").is_err());
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(
            ep("http://broker:1883")
                .unwrap_err()
                .contains("scheme `http`")
        );
        assert!(ep("broker:1883").unwrap_err().contains("expected mqtt://"));
        assert!(ep("mqtt://").unwrap_err().contains("host is missing"));
        assert!(ep("mqtt://:1883").unwrap_err().contains("host is missing"));
        assert!(ep("mqtt://broker:").unwrap_err().contains("empty"));
        assert!(ep("mqtt://broker:0").unwrap_err().contains("port 0"));
        assert!(
            ep("mqtt://broker:70000")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(ep("mqtt://broker:+80").unwrap_err().contains("not a port"));
        assert!(ep("mqtt://broker:x").unwrap_err().contains("not a port"));
        assert!(ep("mqtt://broker/path").unwrap_err().contains("path"));
        assert!(
            ep("mqtt://u:secret@broker")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(!ep("mqtt://u:secret@broker").unwrap_err().contains("secret"));
        assert!(ep("mqtt://bro ker").unwrap_err().contains("not allowed"));
    }

    #[test]
    fn endpoint_maps_to_config_error() {
        let cfg = MqttConfig {
            url: "ws://x".into(),
            ..MqttConfig::default()
        };
        assert!(matches!(cfg.endpoint(), Err(ConfigError::MqttUrl(_))));
        assert_eq!(MqttConfig::default().endpoint().unwrap().port, 1883);
    }
}
