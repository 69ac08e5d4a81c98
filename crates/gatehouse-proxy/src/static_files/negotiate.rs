//! Which precompressed sibling (`file.br`, `file.gz`) a client's `Accept-Encoding` allows,
//! best first. Only the header is read here; whether the sibling exists is the caller's lookup.

use http::{header, HeaderMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Br,
    Gzip,
}

impl Encoding {
    /// The sibling file's suffix, as `gzip_static` and `brotli_static` name them.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gz",
        }
    }

    pub fn content_encoding(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    pub fn etag_suffix(self) -> &'static str {
        match self {
            Encoding::Br => "-br",
            Encoding::Gzip => "-gz",
        }
    }
}

/// The encodings `Accept-Encoding` allows, highest q-value first; brotli wins a tie because it
/// is smaller. `q=0` forbids an encoding, including one that only `*` would have allowed.
pub(super) fn preferred(headers: &HeaderMap) -> impl Iterator<Item = Encoding> {
    let (mut br, mut gzip, mut any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let Some(q) = quality(parts) else { continue };
            if coding.eq_ignore_ascii_case("br") {
                br = Some(q);
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if coding == "*" {
                any = Some(q);
            }
        }
    }
    let br = br.or(any).unwrap_or(0);
    let gzip = gzip.or(any).unwrap_or(0);
    let mut order = [(br, Encoding::Br), (gzip, Encoding::Gzip)];
    // Stable sort keeps brotli first on a tie.
    order.sort_by_key(|&(q, _)| std::cmp::Reverse(q));
    order
        .into_iter()
        .filter(|(q, _)| *q > 0)
        .map(|(_, encoding)| encoding)
}

/// The `q` parameter in thousandths (1000 when absent); `None` for a malformed one, which drops
/// the item rather than guessing.
fn quality<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
        if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths = (0..3).fold(0u16, |acc, i| {
            acc * 10
                + fraction
                    .as_bytes()
                    .get(i)
                    .map_or(0, |digit| u16::from(digit - b'0'))
        });
        return match whole {
            "0" => Some(thousandths),
            "1" if thousandths == 0 => Some(1000),
            _ => None,
        };
    }
    Some(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn order(accept: &[&str]) -> Vec<Encoding> {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        preferred(&headers).collect()
    }

    #[test]
    fn accept_encoding() {
        use Encoding::{Br, Gzip};
        assert_eq!(order(&[]), vec![]);
        assert_eq!(order(&["gzip, deflate, br"]), vec![Br, Gzip]);
        assert_eq!(order(&["gzip"]), vec![Gzip]);
        assert_eq!(order(&["GZIP"]), vec![Gzip]);
        assert_eq!(order(&["x-gzip"]), vec![Gzip]);
        assert_eq!(order(&["br;q=0.5, gzip"]), vec![Gzip, Br]);
        assert_eq!(order(&["br;q=0, gzip;q=0.1"]), vec![Gzip]);
        assert_eq!(order(&["br; q=0.000, gzip;q=0"]), vec![]);
        assert_eq!(order(&["*"]), vec![Br, Gzip]);
        assert_eq!(order(&["*;q=0"]), vec![]);
        assert_eq!(order(&["*, br;q=0"]), vec![Gzip]);
        assert_eq!(order(&["identity"]), vec![]);
        assert_eq!(order(&["br;q=2, gzip;q=0.x"]), vec![]);
        assert_eq!(order(&["br;q=1.000", "gzip;q=0.999"]), vec![Br, Gzip]);
    }
}
