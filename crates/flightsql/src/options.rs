//! Flight session options (`SetSessionOptions`, `GetSessionOptions`, `CloseSession` actions),
//! mapped to the session's DataFusion configuration: setting `datafusion.execution.batch_size`
//! is the same as `SET datafusion.execution.batch_size = …` in that session.
//!
//! The messages are Flight's (`Flight.proto`); arrow-flight 59 does not generate them, so they
//! are declared here with the same field numbers.

use crate::session::Session;
use std::collections::HashMap;

/// `SessionOptionValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionOptionValue {
    #[prost(oneof = "session_option_value::OptionValue", tags = "1, 2, 3, 4, 5")]
    pub option_value: Option<session_option_value::OptionValue>,
}

pub mod session_option_value {
    /// `SessionOptionValue.StringListValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StringListValue {
        #[prost(string, repeated, tag = "1")]
        pub values: Vec<String>,
    }

    /// The value of an option.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum OptionValue {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(sfixed64, tag = "3")]
        Int64(i64),
        #[prost(double, tag = "4")]
        Double(f64),
        #[prost(message, tag = "5")]
        StringList(StringListValue),
    }
}

/// `SetSessionOptionsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsRequest {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `SetSessionOptionsResult.Error`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct SetSessionOptionError {
    /// `SetSessionOptionsResult.ErrorValue`: 1 invalid name, 2 invalid value, 3 error.
    #[prost(int32, tag = "1")]
    pub value: i32,
}

/// `SetSessionOptionsResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub errors: HashMap<String, SetSessionOptionError>,
}

/// `GetSessionOptionsResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSessionOptionsResult {
    #[prost(map = "string, message", tag = "1")]
    pub session_options: HashMap<String, SessionOptionValue>,
}

/// `CloseSessionResult` (status 1: closed).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct CloseSessionResult {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

const INVALID_NAME: i32 = 1;
const INVALID_VALUE: i32 = 2;

/// Sets each option in the session's configuration; the names or values it cannot take are
/// listed in the result (the others are set).
pub(crate) fn set(session: &Session, request: SetSessionOptionsRequest) -> SetSessionOptionsResult {
    use session_option_value::OptionValue;
    let mut errors = HashMap::new();
    let state = session.context().state_ref();
    let mut state = state.write();
    for (name, value) in request.session_options {
        let text = match value.option_value {
            Some(OptionValue::String(s)) => s,
            Some(OptionValue::Bool(b)) => b.to_string(),
            Some(OptionValue::Int64(i)) => i.to_string(),
            Some(OptionValue::Double(d)) => d.to_string(),
            Some(OptionValue::StringList(_)) | None => {
                errors.insert(
                    name,
                    SetSessionOptionError {
                        value: INVALID_VALUE,
                    },
                );
                continue;
            }
        };
        let options = state.config_mut().options_mut();
        let known = options.entries().iter().any(|e| e.key == name);
        if let Err(_e) = options.set(&name, &text) {
            let value = if known { INVALID_VALUE } else { INVALID_NAME };
            errors.insert(name, SetSessionOptionError { value });
        }
    }
    SetSessionOptionsResult { errors }
}

/// Every option of the session's configuration that has a value, as strings.
pub(crate) fn get(session: &Session) -> GetSessionOptionsResult {
    let state = session.context().state();
    let session_options = state
        .config()
        .options()
        .entries()
        .into_iter()
        .filter_map(|entry| {
            let value = entry.value?;
            let value = SessionOptionValue {
                option_value: Some(session_option_value::OptionValue::String(value)),
            };
            Some((entry.key, value))
        })
        .collect();
    GetSessionOptionsResult { session_options }
}
