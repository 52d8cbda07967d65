//! Fuzz target `patch_path`: arbitrary UTF-8 into `scim::filter::parse_patch_path`; when the
//! path has a value filter on a multi-valued attribute of the User type, the filter is also
//! validated and evaluated against sample elements. Nothing may panic.

#![no_main]

use idbridge::scim::eval::{matches_element, validate_element};
use idbridge::scim::filter::{Limits, parse_patch_path};
use idbridge::scim::schema::USER_TYPE;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = parse_patch_path(input, &Limits::default()) else {
        return;
    };
    let (Some(filter), Ok(resolved)) = (&path.filter, USER_TYPE.resolve(&path.attr)) else {
        return;
    };
    let valid = validate_element(resolved.attr, filter);
    for element in [
        json!({"value": "bjensen@example.com", "type": "work", "primary": true}),
        json!({"value": null, "type": "WORK", "primary": "False", "display": ""}),
        json!("not an object"),
    ] {
        let matched = matches_element(resolved.attr, filter, &element);
        assert_eq!(
            valid.is_ok(),
            matched.is_ok(),
            "validate and matches disagree on {input:?}"
        );
    }
});
