//! Fuzz target `filter`: arbitrary UTF-8 into `scim::filter::parse_filter`; when it parses, the
//! filter is also validated against the User type and evaluated against a fixed sample User.
//! Nothing may panic, and `matches` must fail exactly when `validate` does.

#![no_main]

use std::sync::LazyLock;

use idbridge::scim::eval::{matches, validate};
use idbridge::scim::filter::{Limits, parse_filter};
use idbridge::scim::schema::USER_TYPE;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen",
        "userName": "Bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara", "middleName": ""},
        "displayName": "Babs Jensen",
        "nickName": null,
        "title": "Tour Guide",
        "active": "True",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "primary": "true"}],
        "ims": [],
        "photos": [{}],
        "groups": [{"value": "e9e30dba", "$ref": "https://example.com/v2/Groups/e9e30dba", "display": "Tour Guides"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        },
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34.000+02:00",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "version": "W/\"3694e05e9dff591\""
        }
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = parse_filter(input, &Limits::default()) else {
        return;
    };
    let valid = validate(&USER_TYPE, &filter);
    let matched = matches(&USER_TYPE, &filter, &USER);
    assert_eq!(
        valid.is_ok(),
        matched.is_ok(),
        "validate and matches disagree on {input:?}"
    );
});
