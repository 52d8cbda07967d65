//! The SCIM schemas idbridge serves (RFC 7643 §4, §8.7): core User, Group and the Enterprise
//! User extension, as static data, with case-insensitive resolution of attribute paths to
//! their definitions and their place in a resource document.

use super::ast::AttrPath;
use super::error::ScimError;

/// Core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension URN.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Attribute data types (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    /// The wire spelling used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Decimal => "decimal",
            Self::Integer => "integer",
            Self::DateTime => "dateTime",
            Self::Binary => "binary",
            Self::Reference => "reference",
            Self::Complex => "complex",
        }
    }
}

/// Who may change an attribute (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "readOnly",
            Self::ReadWrite => "readWrite",
            Self::Immutable => "immutable",
            Self::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Never => "never",
            Self::Default => "default",
            Self::Request => "request",
        }
    }
}

/// Uniqueness (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Server => "server",
            Self::Global => "global",
        }
    }
}

/// One attribute definition.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
}

/// A single-valued, optional, case-insensitive, read-write attribute returned by default.
const fn attr(name: &'static str, ty: AttrType, description: &'static str) -> AttrDef {
    AttrDef {
        name,
        ty,
        multi_valued: false,
        description,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    attr(name, AttrType::String, description)
}

impl AttrDef {
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    const fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    const fn subs(mut self, subs: &'static [AttrDef]) -> Self {
        self.ty = AttrType::Complex;
        self.sub_attributes = subs;
        self
    }

    /// The sub-attribute called `name` (case-insensitive).
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        find(self.sub_attributes, name)
    }
}

/// One schema.
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

impl SchemaDef {
    /// The top-level attribute called `name` (case-insensitive).
    pub fn attr(&self, name: &str) -> Option<&'static AttrDef> {
        find(self.attributes, name)
    }
}

fn find(attrs: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// A resource type: its endpoint, core schema and extensions.
#[derive(Debug)]
pub struct ResourceTypeDef {
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static SchemaDef,
    /// Extension schemas and whether each is required.
    pub extensions: &'static [(&'static SchemaDef, bool)],
}

/// Where a resolved attribute lives.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// The schema that defines the attribute.
    pub schema: &'static SchemaDef,
    /// Whether that schema is an extension (its attributes sit under the URN key).
    pub extension: bool,
    /// The attribute.
    pub attr: &'static AttrDef,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'static AttrDef>,
}

impl Resolved {
    /// The definition the path ends at.
    pub fn leaf(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// A canonical, lower-case key for the path, e.g. `name.familyname`, `emails.value` or
    /// `urn:…:enterprise:2.0:user:manager.value`. Used to index and compare values.
    pub fn key(&self) -> String {
        let mut key = String::new();
        if self.extension {
            key.push_str(&self.schema.id.to_ascii_lowercase());
            key.push(':');
        }
        key.push_str(&self.attr.name.to_ascii_lowercase());
        if let Some(sub) = self.sub {
            key.push('.');
            key.push_str(&sub.name.to_ascii_lowercase());
        }
        key
    }
}

impl ResourceTypeDef {
    /// Every schema of this type: the core schema first.
    pub fn schemas(&self) -> impl Iterator<Item = (&'static SchemaDef, bool)> + '_ {
        std::iter::once((self.schema, false)).chain(self.extensions.iter().map(|(s, _)| (*s, true)))
    }

    /// The schema with URN `urn` (case-insensitive) among this type's schemas.
    pub fn schema_by_urn(&self, urn: &str) -> Option<(&'static SchemaDef, bool)> {
        self.schemas().find(|(s, _)| s.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves an attribute path, case-insensitively. A path without a URN is looked up in the
    /// core schema, then in the extensions; `meta`, `id`, `externalId` and `schemas` resolve
    /// to [`COMMON`] attributes.
    pub fn resolve(&self, path: &AttrPath) -> Result<Resolved, ScimError> {
        let unknown = || ScimError::invalid_path(format!("unknown attribute `{}`", display(path)));
        let (schema, extension, attr) = match &path.urn {
            Some(urn) => {
                let (schema, extension) = self.schema_by_urn(urn).ok_or_else(unknown)?;
                let attr = if extension {
                    schema.attr(&path.name)
                } else {
                    schema.attr(&path.name).or_else(|| COMMON.attr(&path.name))
                };
                (schema, extension, attr.ok_or_else(unknown)?)
            }
            None => {
                if let Some(a) = COMMON.attr(&path.name) {
                    (self.schema, false, a)
                } else if let Some(a) = self.schema.attr(&path.name) {
                    (self.schema, false, a)
                } else {
                    self.extensions
                        .iter()
                        .find_map(|(s, _)| s.attr(&path.name).map(|a| (*s, true, a)))
                        .ok_or_else(unknown)?
                }
            }
        };
        let sub = match &path.sub {
            Some(name) => Some(find(attr.sub_attributes, name).ok_or_else(unknown)?),
            None => None,
        };
        Ok(Resolved {
            schema,
            extension,
            attr,
            sub,
        })
    }
}

/// A path as it would be written, for messages.
pub fn display(path: &AttrPath) -> String {
    let mut s = String::new();
    if let Some(urn) = &path.urn {
        s.push_str(urn);
        s.push(':');
    }
    s.push_str(&path.name);
    if let Some(sub) = &path.sub {
        s.push('.');
        s.push_str(sub);
    }
    s
}

use AttrType::{Boolean, DateTime, Reference};
use Mutability::{Immutable, ReadOnly, WriteOnly};

const TYPE_WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

/// Sub-attributes of a plain multi-valued attribute (RFC 7643 §2.4).
const fn multi_subs(value_desc: &'static str) -> [AttrDef; 4] {
    [
        string("value", value_desc),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.",
        )
        .mutability(ReadOnly),
        string("type", "A label indicating the attribute's function."),
        attr("primary", Boolean, "Whether this is the primary value."),
    ]
}

const EMAIL_SUBS: [AttrDef; 4] = {
    let mut s = multi_subs("Email address for the User.");
    s[1].mutability = Mutability::ReadWrite;
    s[2].canonical_values = TYPE_WORK_HOME_OTHER;
    s
};
const PHONE_SUBS: [AttrDef; 4] = {
    let mut s = multi_subs("Phone number of the User.");
    s[1].mutability = Mutability::ReadWrite;
    s[2].canonical_values = &["work", "home", "mobile", "fax", "pager", "other"];
    s
};
const IMS_SUBS: [AttrDef; 4] = {
    let mut s = multi_subs("Instant messaging address for the User.");
    s[1].mutability = Mutability::ReadWrite;
    s
};
const PHOTO_SUBS: [AttrDef; 4] = {
    let mut s = multi_subs("URL of a photo of the User.");
    s[0].ty = Reference;
    s[0].reference_types = &["external"];
    s[1].mutability = Mutability::ReadWrite;
    s[2].canonical_values = &["photo", "thumbnail"];
    s
};
const PLAIN_SUBS: [AttrDef; 4] = {
    let mut s = multi_subs("The value.");
    s[1].mutability = Mutability::ReadWrite;
    s
};
const CERT_SUBS: [AttrDef; 4] = {
    let mut s = multi_subs("The value of an X.509 certificate.");
    s[0].ty = AttrType::Binary;
    s[1].mutability = Mutability::ReadWrite;
    s
};

const NAME_SUBS: &[AttrDef] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name of the User."),
    string("givenName", "The given name of the User."),
    string("middleName", "The middle name(s) of the User."),
    string("honorificPrefix", "The honorific prefix(es) of the User."),
    string("honorificSuffix", "The honorific suffix(es) of the User."),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    string("streetAddress", "The full street address component."),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string("country", "The country name component."),
    string("type", "A label indicating the attribute's function.")
        .canonical(&["work", "home", "other"]),
    attr("primary", Boolean, "Whether this is the primary address."),
];

const GROUP_REF_SUBS: &[AttrDef] = &[
    string("value", "The identifier of the User's group.").mutability(ReadOnly),
    attr(
        "$ref",
        Reference,
        "The URI of the corresponding Group resource.",
    )
    .refs(&["User", "Group"])
    .mutability(ReadOnly),
    string("display", "A human-readable name of the group.").mutability(ReadOnly),
    string("type", "How the membership was derived.")
        .canonical(&["direct", "indirect"])
        .mutability(ReadOnly),
];

/// `id`, `externalId`, `meta` and `schemas`: common to every resource (RFC 7643 §3.1).
pub static COMMON: SchemaDef = SchemaDef {
    id: "urn:ietf:params:scim:schemas:core:2.0:Common",
    name: "Common",
    description: "Attributes common to every resource",
    attributes: &[
        string("id", "Unique identifier assigned by the service provider.")
            .case_exact()
            .mutability(ReadOnly)
            .returned(Returned::Always)
            .unique(Uniqueness::Server),
        string(
            "externalId",
            "Identifier assigned by the provisioning client.",
        )
        .case_exact(),
        attr("schemas", Reference, "Schema URNs of the resource.")
            .multi()
            .case_exact()
            .mutability(ReadOnly)
            .returned(Returned::Always),
        attr("meta", AttrType::Complex, "Resource metadata.")
            .mutability(ReadOnly)
            .subs(&[
                string("resourceType", "The resource type.")
                    .case_exact()
                    .mutability(ReadOnly),
                attr("created", DateTime, "When the resource was added.").mutability(ReadOnly),
                attr(
                    "lastModified",
                    DateTime,
                    "When the resource was last changed.",
                )
                .mutability(ReadOnly),
                attr("location", Reference, "The URI of the resource.")
                    .case_exact()
                    .mutability(ReadOnly),
                string("version", "The version (weak ETag) of the resource.")
                    .case_exact()
                    .mutability(ReadOnly),
            ]),
    ],
};

/// The core User schema (RFC 7643 §4.1).
pub static USER: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        string(
            "userName",
            "Unique identifier for the User, used to sign in.",
        )
        .required()
        .unique(Uniqueness::Server),
        attr(
            "name",
            AttrType::Complex,
            "The components of the user's real name.",
        )
        .subs(NAME_SUBS),
        string("displayName", "The name of the User, suitable for display."),
        string("nickName", "The casual way to address the user."),
        attr(
            "profileUrl",
            Reference,
            "A URI of an online profile of the User.",
        )
        .refs(&["external"]),
        string("title", "The user's title, such as \"Vice President\"."),
        string(
            "userType",
            "The relationship between the organization and the user.",
        ),
        string(
            "preferredLanguage",
            "The User's preferred written or spoken language.",
        ),
        string("locale", "The User's default location for localizing."),
        string("timezone", "The User's time zone in IANA format."),
        attr("active", Boolean, "The User's administrative status."),
        string("password", "The User's cleartext password; never returned.")
            .mutability(WriteOnly)
            .returned(Returned::Never),
        attr("emails", AttrType::Complex, "Email addresses for the user.")
            .multi()
            .subs(&EMAIL_SUBS),
        attr(
            "phoneNumbers",
            AttrType::Complex,
            "Phone numbers for the User.",
        )
        .multi()
        .subs(&PHONE_SUBS),
        attr(
            "ims",
            AttrType::Complex,
            "Instant messaging addresses for the User.",
        )
        .multi()
        .subs(&IMS_SUBS),
        attr("photos", AttrType::Complex, "URLs of photos of the User.")
            .multi()
            .subs(&PHOTO_SUBS),
        attr(
            "addresses",
            AttrType::Complex,
            "A physical mailing address for this User.",
        )
        .multi()
        .subs(ADDRESS_SUBS),
        attr(
            "groups",
            AttrType::Complex,
            "Groups the user belongs to; managed through Group.",
        )
        .multi()
        .mutability(ReadOnly)
        .subs(GROUP_REF_SUBS),
        attr(
            "entitlements",
            AttrType::Complex,
            "Entitlements of the User.",
        )
        .multi()
        .subs(&PLAIN_SUBS),
        attr("roles", AttrType::Complex, "Roles of the User.")
            .multi()
            .subs(&PLAIN_SUBS),
        attr(
            "x509Certificates",
            AttrType::Complex,
            "X.509 certificates of the User.",
        )
        .multi()
        .subs(&CERT_SUBS),
    ],
};

/// The core Group schema (RFC 7643 §4.2).
pub static GROUP: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        string("displayName", "A human-readable name for the Group.")
            .required()
            .unique(Uniqueness::Server),
        attr(
            "members",
            AttrType::Complex,
            "A list of members of the Group.",
        )
        .multi()
        .subs(&[
            string("value", "Identifier of the member of this Group.")
                .case_exact()
                .mutability(Immutable),
            attr("$ref", Reference, "The URI of the member resource.")
                .refs(&["User", "Group"])
                .mutability(Immutable),
            string("display", "A human-readable name of the member.").mutability(ReadOnly),
            string("type", "The type of the member.")
                .canonical(&["User", "Group"])
                .mutability(Immutable),
        ]),
    ],
};

/// The Enterprise User extension (RFC 7643 §4.3).
pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        string("costCenter", "Identifies the name of a cost center."),
        string("organization", "Identifies the name of an organization."),
        string("division", "Identifies the name of a division."),
        string("department", "Identifies the name of a department."),
        attr("manager", AttrType::Complex, "The User's manager.").subs(&[
            string(
                "value",
                "The id of the SCIM resource representing the User's manager.",
            )
            .case_exact(),
            attr("$ref", Reference, "The URI of the manager's User resource.").refs(&["User"]),
            string("displayName", "The displayName of the User's manager.").mutability(ReadOnly),
        ]),
    ],
};

/// The User resource type.
pub static USER_TYPE: ResourceTypeDef = ResourceTypeDef {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[(&ENTERPRISE_USER, false)],
};

/// The Group resource type.
pub static GROUP_TYPE: ResourceTypeDef = ResourceTypeDef {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every schema served under `/Schemas`.
pub static ALL_SCHEMAS: [&SchemaDef; 3] = [&USER, &GROUP, &ENTERPRISE_USER];

#[cfg(test)]
mod tests {
    use super::*;

    fn path(urn: Option<&str>, name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: urn.map(str::to_owned),
            name: name.into(),
            sub: sub.map(str::to_owned),
        }
    }

    #[test]
    fn attribute_names_resolve_case_insensitively() {
        let r = USER_TYPE.resolve(&path(None, "USERNAME", None)).unwrap();
        assert_eq!(r.attr.name, "userName");
        assert_eq!(r.key(), "username");
        let r = USER_TYPE
            .resolve(&path(None, "Emails", Some("VALUE")))
            .unwrap();
        assert_eq!((r.attr.name, r.leaf().name), ("emails", "value"));
        assert_eq!(r.key(), "emails.value");
    }

    #[test]
    fn extension_attributes_resolve_with_and_without_their_urn() {
        let with = USER_TYPE
            .resolve(&path(
                Some(ENTERPRISE_USER_SCHEMA),
                "manager",
                Some("value"),
            ))
            .unwrap();
        assert!(with.extension);
        assert_eq!(
            with.key(),
            format!("{}:manager.value", ENTERPRISE_USER_SCHEMA.to_lowercase())
        );
        let without = USER_TYPE
            .resolve(&path(None, "employeeNumber", None))
            .unwrap();
        assert_eq!(without.schema.id, ENTERPRISE_USER_SCHEMA);
    }

    #[test]
    fn core_urn_prefix_and_common_attributes_resolve() {
        let r = USER_TYPE
            .resolve(&path(Some(USER_SCHEMA), "userName", None))
            .unwrap();
        assert!(!r.extension);
        let meta = USER_TYPE
            .resolve(&path(None, "meta", Some("lastModified")))
            .unwrap();
        assert_eq!(meta.leaf().ty, AttrType::DateTime);
        assert!(
            USER_TYPE
                .resolve(&path(None, "id", None))
                .unwrap()
                .leaf()
                .case_exact
        );
    }

    #[test]
    fn unknown_attributes_are_invalid_paths() {
        let e = USER_TYPE
            .resolve(&path(None, "shoeSize", None))
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(GROUP_TYPE.resolve(&path(None, "emails", None)).is_err());
        assert!(
            USER_TYPE
                .resolve(&path(None, "name", Some("nope")))
                .is_err()
        );
    }
}
