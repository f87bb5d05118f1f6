//! Message content: XMTP's `EncodedContent`, with the text codec built in.
//!
//! A message carries an `EncodedContent`: a content type id
//! (`authority/type:major.minor`, e.g. `xmtp.org/text:1.0`), parameters, an
//! optional fallback text for clients that do not know the type, and the
//! encoded bytes. The client decodes `xmtp.org/text:1.0` itself; any other
//! type is kept and reported as it came (never dropped), so applications can
//! add their own codecs.

use std::fmt;

use xmtp_proto::xmtp::message_contents::{ContentTypeId, EncodedContent};

/// The authority of XMTP's standard content types.
pub const XMTP_AUTHORITY: &str = "xmtp.org";

/// A content type, as `authority/type:major.minor`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentType {
    /// Who defines the type (`xmtp.org` for the standard ones).
    pub authority_id: String,
    /// The type's name within its authority.
    pub type_id: String,
    /// Major version: a change a decoder must know about.
    pub version_major: u32,
    /// Minor version: compatible changes.
    pub version_minor: u32,
}

/// Why a content value could not be understood.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ContentError {
    /// A content type id that is not `authority/type:major.minor`.
    #[error("content type {0:?} is not of the form authority/type:major.minor")]
    BadContentType(String),
    /// The message has no content type.
    #[error("the content has no content type")]
    MissingContentType,
    /// Text content that is not UTF-8.
    #[error("text content is not valid UTF-8")]
    NotUtf8,
    /// Compressed content, which this client does not decompress.
    #[error("compressed content is not supported; the fallback text is shown instead")]
    Compressed,
    /// The content is of another type than the one asked for.
    #[error("content is of type {found}, not {expected}")]
    WrongType {
        /// The type asked for.
        expected: String,
        /// The type found.
        found: String,
    },
}

impl ContentType {
    /// `xmtp.org/text:1.0`.
    pub fn text() -> Self {
        Self {
            authority_id: XMTP_AUTHORITY.into(),
            type_id: "text".into(),
            version_major: 1,
            version_minor: 0,
        }
    }

    /// Parses `authority/type:major.minor`.
    pub fn parse(s: &str) -> Result<Self, ContentError> {
        let bad = || ContentError::BadContentType(s.chars().take(100).collect());
        let (authority, rest) = s.split_once('/').ok_or_else(bad)?;
        let (type_id, version) = rest.split_once(':').ok_or_else(bad)?;
        let (major, minor) = version.split_once('.').ok_or_else(bad)?;
        if authority.is_empty() || type_id.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            authority_id: authority.into(),
            type_id: type_id.into(),
            version_major: major.parse().map_err(|_| bad())?,
            version_minor: minor.parse().map_err(|_| bad())?,
        })
    }

    /// Whether this is the same type with a compatible (same major) version.
    pub fn same_type(&self, other: &Self) -> bool {
        self.authority_id == other.authority_id
            && self.type_id == other.type_id
            && self.version_major == other.version_major
    }

    pub(crate) fn to_proto(&self) -> ContentTypeId {
        ContentTypeId {
            authority_id: self.authority_id.clone(),
            type_id: self.type_id.clone(),
            version_major: self.version_major,
            version_minor: self.version_minor,
        }
    }

    pub(crate) fn from_proto(id: &ContentTypeId) -> Self {
        Self {
            authority_id: id.authority_id.clone(),
            type_id: id.type_id.clone(),
            version_major: id.version_major,
            version_minor: id.version_minor,
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}:{}.{}",
            self.authority_id, self.type_id, self.version_major, self.version_minor
        )
    }
}

/// Encodes text as `xmtp.org/text:1.0` (UTF-8, `encoding=UTF-8` parameter).
pub fn encode_text(text: &str) -> EncodedContent {
    EncodedContent {
        r#type: Some(ContentType::text().to_proto()),
        parameters: [("encoding".to_string(), "UTF-8".to_string())]
            .into_iter()
            .collect(),
        fallback: None,
        compression: None,
        content: text.as_bytes().to_vec(),
    }
}

/// Encodes content of a custom type; `fallback` is what clients that do not
/// know the type should show.
pub fn encode_custom(
    content_type: &ContentType,
    content: Vec<u8>,
    fallback: Option<String>,
) -> EncodedContent {
    EncodedContent {
        r#type: Some(content_type.to_proto()),
        parameters: Default::default(),
        fallback,
        compression: None,
        content,
    }
}

/// The content type of an encoded value.
pub fn content_type_of(content: &EncodedContent) -> Result<ContentType, ContentError> {
    content
        .r#type
        .as_ref()
        .map(ContentType::from_proto)
        .ok_or(ContentError::MissingContentType)
}

/// Decodes `xmtp.org/text:1.0` content.
pub fn decode_text(content: &EncodedContent) -> Result<String, ContentError> {
    let found = content_type_of(content)?;
    if !found.same_type(&ContentType::text()) {
        return Err(ContentError::WrongType {
            expected: ContentType::text().to_string(),
            found: found.to_string(),
        });
    }
    if content.compression.is_some() {
        return Err(ContentError::Compressed);
    }
    String::from_utf8(content.content.clone()).map_err(|_| ContentError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let c = encode_text("héllo");
        assert_eq!(
            content_type_of(&c).unwrap().to_string(),
            "xmtp.org/text:1.0"
        );
        assert_eq!(decode_text(&c).unwrap(), "héllo");
    }

    #[test]
    fn content_type_parses_its_display_form() {
        let t = ContentType::parse("example.com/reaction:2.3").unwrap();
        assert_eq!(t.authority_id, "example.com");
        assert_eq!(t.version_minor, 3);
        assert_eq!(ContentType::parse(&t.to_string()).unwrap(), t);
        assert!(ContentType::parse("nonsense").is_err());
        assert!(ContentType::parse("/x:1.0").is_err());
        assert!(ContentType::parse("a/x:one.0").is_err());
    }

    #[test]
    fn custom_content_is_not_text() {
        let t = ContentType::parse("example.com/reaction:1.0").unwrap();
        let c = encode_custom(&t, vec![1, 2], Some("reacted".into()));
        assert!(matches!(
            decode_text(&c),
            Err(ContentError::WrongType { .. })
        ));
        assert_eq!(content_type_of(&c).unwrap(), t);
    }

    #[test]
    fn invalid_utf8_text_is_an_error() {
        let mut c = encode_text("x");
        c.content = vec![0xff, 0xfe];
        assert_eq!(decode_text(&c), Err(ContentError::NotUtf8));
    }

    proptest::proptest! {
        #[test]
        fn content_type_parsing_never_panics_and_round_trips(s in ".{0,40}") {
            if let Ok(t) = ContentType::parse(&s) {
                proptest::prop_assert_eq!(ContentType::parse(&t.to_string()).unwrap(), t);
            }
        }
    }
}
