//! The SCIM discovery documents: `/ServiceProviderConfig` (RFC 7643 §5), `/ResourceTypes`
//! (§6) and `/Schemas` (§7), rendered from the static definitions in [`super::schema`]. They
//! must tell the truth about what the server supports. No I/O.

use serde_json::{Map, Value, json};

use super::schema::{
    ALL_SCHEMAS, AttrDef, AttrType, GROUP_TYPE, ResourceTypeDef, SchemaDef, USER_TYPE,
};

/// The ServiceProviderConfig schema URN.
pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// The ResourceType schema URN.
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The Schema schema URN.
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The resource types served, in listing order.
static RESOURCE_TYPES: [&ResourceTypeDef; 2] = [&USER_TYPE, &GROUP_TYPE];

/// What the server advertises in its ServiceProviderConfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The most resources a filtered list returns.
    pub max_results: usize,
    /// The most operations in one bulk request.
    pub bulk_max_operations: usize,
    /// The largest bulk request body, in bytes.
    pub bulk_max_payload_bytes: usize,
    /// Where a person can read about this SCIM server.
    pub documentation_uri: Option<String>,
}

/// The `/ServiceProviderConfig` document. `base_url` is the SCIM base, e.g.
/// `https://idb.example/scim/v2/okta`.
pub fn service_provider_config(base_url: &str, caps: &Capabilities) -> Value {
    let base = base_url.trim_end_matches('/');
    let mut spc = json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": caps.bulk_max_operations,
            "maxPayloadSize": caps.bulk_max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": caps.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued by `idbridge token create`",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    });
    if let (Some(uri), Some(obj)) = (&caps.documentation_uri, spc.as_object_mut()) {
        obj.insert("documentationUri".into(), Value::from(uri.as_str()));
    }
    spc
}

/// Every `/ResourceTypes` entry: User, then Group.
pub fn resource_types(base_url: &str) -> Vec<Value> {
    RESOURCE_TYPES
        .iter()
        .map(|rt| render_resource_type(base_url, rt))
        .collect()
}

/// One resource type by its id (`User`, `Group`), looked up case-insensitively.
pub fn resource_type(base_url: &str, name: &str) -> Option<Value> {
    RESOURCE_TYPES
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(name))
        .map(|rt| render_resource_type(base_url, rt))
}

/// Every `/Schemas` entry.
pub fn schemas(base_url: &str) -> Vec<Value> {
    ALL_SCHEMAS
        .iter()
        .map(|s| render_schema(base_url, s))
        .collect()
}

/// One schema by its URN, looked up case-insensitively.
pub fn schema(base_url: &str, id: &str) -> Option<Value> {
    ALL_SCHEMAS
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| render_schema(base_url, s))
}

fn render_resource_type(base_url: &str, rt: &ResourceTypeDef) -> Value {
    let base = base_url.trim_end_matches('/');
    let mut out = json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{}", rt.name),
        },
    });
    if !rt.extensions.is_empty()
        && let Some(obj) = out.as_object_mut()
    {
        let extensions = rt
            .extensions
            .iter()
            .map(|(s, required)| json!({"schema": s.id, "required": required}))
            .collect();
        obj.insert("schemaExtensions".into(), Value::Array(extensions));
    }
    out
}

fn render_schema(base_url: &str, schema: &SchemaDef) -> Value {
    let base = base_url.trim_end_matches('/');
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(render_attribute).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{}", schema.id),
        },
    })
}

/// One attribute definition (RFC 7643 §7): every characteristic present, optional lists only
/// when non-empty, never a null (Entra).
fn render_attribute(a: &AttrDef) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), Value::from(a.name));
    out.insert("type".into(), Value::from(a.ty.as_str()));
    out.insert("multiValued".into(), Value::from(a.multi_valued));
    out.insert("description".into(), Value::from(a.description));
    out.insert("required".into(), Value::from(a.required));
    out.insert("caseExact".into(), Value::from(a.case_exact));
    out.insert("mutability".into(), Value::from(a.mutability.as_str()));
    out.insert("returned".into(), Value::from(a.returned.as_str()));
    out.insert("uniqueness".into(), Value::from(a.uniqueness.as_str()));
    if !a.canonical_values.is_empty() {
        out.insert("canonicalValues".into(), json!(a.canonical_values));
    }
    if !a.reference_types.is_empty() {
        out.insert("referenceTypes".into(), json!(a.reference_types));
    }
    if a.ty == AttrType::Complex {
        let subs = a.sub_attributes.iter().map(render_attribute).collect();
        out.insert("subAttributes".into(), Value::Array(subs));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

    const BASE: &str = "https://idb.example/scim/v2/okta/";

    fn caps() -> Capabilities {
        Capabilities {
            max_results: 200,
            bulk_max_operations: 100,
            bulk_max_payload_bytes: 1_048_576,
            documentation_uri: None,
        }
    }

    /// Every value in the tree, to check that none is null.
    fn no_nulls(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::Array(items) => items.iter().all(no_nulls),
            Value::Object(m) => m.values().all(no_nulls),
            _ => true,
        }
    }

    #[test]
    fn service_provider_config_advertises_what_the_server_does() {
        let spc = service_provider_config(BASE, &caps());
        assert_eq!(spc["schemas"], json!([SPC_SCHEMA]));
        assert_eq!(spc["patch"]["supported"], true);
        assert_eq!(
            spc["bulk"],
            json!({"supported":true,"maxOperations":100,"maxPayloadSize":1_048_576})
        );
        assert_eq!(spc["filter"], json!({"supported":true,"maxResults":200}));
        assert_eq!(spc["changePassword"]["supported"], false);
        assert_eq!(spc["sort"]["supported"], true);
        assert_eq!(spc["etag"]["supported"], true);
        assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(spc["authenticationSchemes"][0]["primary"], true);
        assert_eq!(
            spc["meta"],
            json!({"resourceType":"ServiceProviderConfig","location":"https://idb.example/scim/v2/okta/ServiceProviderConfig"})
        );
        assert!(spc.get("documentationUri").is_none());
        let mut c = caps();
        c.documentation_uri = Some("https://docs.example/scim".into());
        assert_eq!(
            service_provider_config(BASE, &c)["documentationUri"],
            "https://docs.example/scim"
        );
    }

    #[test]
    fn resource_types_list_user_with_the_enterprise_extension_and_group_without() {
        let all = resource_types(BASE);
        assert_eq!(all.len(), 2);
        let user = &all[0];
        assert_eq!(user["schemas"], json!([RESOURCE_TYPE_SCHEMA]));
        assert_eq!(
            (&user["id"], &user["name"], &user["endpoint"]),
            (&json!("User"), &json!("User"), &json!("/Users"))
        );
        assert_eq!(user["schema"], USER_SCHEMA);
        assert_eq!(
            user["schemaExtensions"],
            json!([{"schema":ENTERPRISE_USER_SCHEMA,"required":false}])
        );
        assert_eq!(
            user["meta"]["location"],
            "https://idb.example/scim/v2/okta/ResourceTypes/User"
        );
        let group = &all[1];
        assert_eq!(group["schema"], GROUP_SCHEMA);
        assert!(group.get("schemaExtensions").is_none());
        assert_eq!(group["meta"]["resourceType"], "ResourceType");
    }

    #[test]
    fn a_resource_type_is_found_case_insensitively_and_unknown_ones_are_none() {
        assert_eq!(resource_type(BASE, "group").unwrap()["id"], "Group");
        assert!(resource_type(BASE, "Device").is_none());
    }

    #[test]
    fn schemas_render_every_attribute_characteristic_without_nulls() {
        let all = schemas(BASE);
        assert_eq!(all.len(), 3);
        for s in &all {
            assert!(no_nulls(s), "{s}");
            assert_eq!(s["schemas"], json!([SCHEMA_SCHEMA]));
            assert_eq!(s["meta"]["resourceType"], "Schema");
            for a in s["attributes"].as_array().unwrap() {
                for key in [
                    "name",
                    "type",
                    "multiValued",
                    "description",
                    "required",
                    "caseExact",
                    "mutability",
                    "returned",
                    "uniqueness",
                ] {
                    assert!(a.get(key).is_some(), "{key} missing in {a}");
                }
                assert_eq!(
                    a["type"] == "complex",
                    a.get("subAttributes").is_some(),
                    "{a}"
                );
            }
        }
        let user = &all[0];
        assert_eq!(user["id"], USER_SCHEMA);
        assert_eq!(
            user["meta"]["location"],
            format!("https://idb.example/scim/v2/okta/Schemas/{USER_SCHEMA}")
        );
        let names: Vec<&str> = user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"userName") && !names.contains(&"id") && !names.contains(&"meta"));
        let emails = user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "emails")
            .unwrap();
        assert_eq!(emails["multiValued"], true);
        let email_type = emails["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "type")
            .unwrap();
        assert_eq!(
            email_type["canonicalValues"],
            json!(["work", "home", "other"])
        );
        let password = user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "password")
            .unwrap();
        assert_eq!(
            (&password["mutability"], &password["returned"]),
            (&json!("writeOnly"), &json!("never"))
        );
        let user_name = user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "userName")
            .unwrap();
        assert!(
            user_name.get("referenceTypes").is_none() && user_name.get("canonicalValues").is_none()
        );
    }

    #[test]
    fn a_schema_is_found_by_urn_case_insensitively_and_unknown_ids_are_none() {
        let g = schema(BASE, &GROUP_SCHEMA.to_uppercase()).unwrap();
        assert_eq!(g["id"], GROUP_SCHEMA);
        let members = g["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "members")
            .unwrap();
        assert_eq!(members["subAttributes"].as_array().unwrap().len(), 4);
        assert!(schema(BASE, "urn:ietf:params:scim:schemas:core:2.0:Device").is_none());
        assert!(schema(BASE, "").is_none());
    }
}
