//! The description's schemas that have no Rust type of their own: the error body and its
//! codes (from [`ErrorCode`]), the tiers (from [`Source`]), Nexon's passed-through equipment
//! document and the configuration dump.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::equipment::Source;
use crate::error::ErrorCode;
use maple_common::metrics::Label as _;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `Error`: the body of every error response.
pub(super) struct ErrorBodySchema;

impl PartialSchema for ErrorBodySchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "The body of every error response: `{\"error\":{\"code\":…,\"message\":…}}`.",
            ))
            .property(
                "error",
                ObjectBuilder::new()
                    .property("code", Ref::from_schema_name(ErrorCodeSchema::name()))
                    .property(
                        "message",
                        string().description(Some("For humans; may change.")),
                    )
                    .required("code")
                    .required("message"),
            )
            .required("error")
            .into()
    }
}

impl ToSchema for ErrorBodySchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// `ErrorCode`: every code, with a table of statuses and meanings from [`ErrorCode`].
pub(super) struct ErrorCodeSchema;

impl PartialSchema for ErrorCodeSchema {
    fn schema() -> RefOr<Schema> {
        let mut table = String::from(
            "Stable `error.code` values (clients may branch on them; `message` is for humans \
             and may change).\n\n| code | HTTP status | meaning |\n|---|---|---|\n",
        );
        for code in ErrorCode::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                code.meaning()
            ));
        }
        string()
            .description(Some(table.trim_end()))
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCodeSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

/// `EquipmentSource`: the tiers, from [`Source`].
pub(super) struct EquipmentSourceSchema;

impl PartialSchema for EquipmentSourceSchema {
    fn schema() -> RefOr<Schema> {
        string()
            .enum_values(Some(Source::ALL.iter().map(|source| source.as_str())))
            .into()
    }
}

impl ToSchema for EquipmentSourceSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "EquipmentSource".into()
    }
}

/// `Equipment`: Nexon's document, passed through; a few fields described.
pub(super) struct EquipmentSchema;

impl PartialSchema for EquipmentSchema {
    fn schema() -> RefOr<Schema> {
        let nullable = |kind: Type| {
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                kind,
                Type::Null,
            ]))
        };
        let item = ObjectBuilder::new()
            .description(Some(
                "One equipped item as Nexon describes it (many more fields than listed).",
            ))
            .property("item_equipment_part", nullable(Type::String))
            .property("item_equipment_slot", nullable(Type::String))
            .property("item_name", nullable(Type::String))
            .property("starforce", nullable(Type::String))
            .property("potential_option_grade", nullable(Type::String))
            .property("additional_potential_option_grade", nullable(Type::String));
        ObjectBuilder::new()
            .description(Some(
                "Nexon's `character/item-equipment` document, verbatim (~350 KB). Only a few \
                 key fields are described; every field Nexon sends is passed through.",
            ))
            .property("date", nullable(Type::String))
            .property("character_class", nullable(Type::String))
            .property("preset_no", nullable(Type::Integer))
            .property(
                "item_equipment",
                utoipa::openapi::schema::ArrayBuilder::new().items(item),
            )
            .into()
    }
}

impl ToSchema for EquipmentSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Equipment".into()
    }
}

/// `AdminConfig`: [`crate::config::CoreConfig::redacted`].
pub(super) struct AdminConfigSchema;

impl PartialSchema for AdminConfigSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Every declared setting by its variable, as it was read (the default when \
                 unset): secrets only as `<set>`/`<unset>`, URLs with passwords replaced.",
            ))
            .additional_properties(Some(string()))
            .into()
    }
}

impl ToSchema for AdminConfigSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "AdminConfig".into()
    }
}
