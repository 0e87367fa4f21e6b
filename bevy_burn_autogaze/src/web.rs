//! The viewer in the browser (wasm32): the page's URL query is the command
//! line ([`ViewerArgs::from_query`]), the window is the page's
//! `<canvas id="autogaze">`. There are no threads: patch-diff runs inline;
//! the model (the WebGPU bundle) runs on the page's GPU as a task on the
//! page's event loop, its one readback a frame awaited, so the page never
//! blocks on it. Once the measured frames are shown the perf summary (the
//! headless schema, plus `web_bundle` and the loader's `web_loader` note)
//! is published as `window.__AUTOGAZE_SUMMARY__`; a setup or parse error
//! as `window.__AUTOGAZE_ERROR__` (and on the console).

use bevy::prelude::*;
use wasm_bindgen::JsValue;

use crate::AutoGazePlugin;
use crate::cli::{ViewerArgs, WEB_BUNDLE};
use crate::recording::{RecordingDone, SummaryOutcome, SummaryRecordingPlugin, outcome_ref};
use crate::viewer::ViewerPlugin;

/// The global the summary is published on.
pub const SUMMARY_GLOBAL: &str = "__AUTOGAZE_SUMMARY__";
/// The global an error is published on.
pub const ERROR_GLOBAL: &str = "__AUTOGAZE_ERROR__";
/// The global the page's loader leaves its choice on (why this bundle).
pub const LOADER_GLOBAL: &str = "__AUTOGAZE_LOADER__";

/// Starts the viewer on the page (returns once the browser drives it).
pub fn run() {
    std::panic::set_hook(Box::new(|info| {
        fail(&format!("bevy_burn_autogaze panicked: {info}"))
    }));
    let query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let args = match ViewerArgs::from_query(&query) {
        Ok(a) => a,
        Err(e) => return fail(&format!("URL query {query:?}: {e}")),
    };
    let outcome = SummaryOutcome::default();
    App::new()
        .add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: "burn_autogaze".into(),
                canvas: Some("#autogaze".into()),
                fit_canvas_to_parent: true,
                prevent_default_event_handling: false,
                ..default()
            }),
            ..default()
        }))
        .add_plugins(AutoGazePlugin::new(args.settings()))
        .add_plugins(ViewerPlugin {
            target: None,
            fit: args.panel_fit(),
        })
        .add_plugins(SummaryRecordingPlugin {
            options: args.record_options(),
            outcome: outcome.clone(),
        })
        .insert_resource(Published {
            outcome,
            done: false,
        })
        .add_systems(Last, publish.after(RecordingDone))
        .run();
}

#[derive(Resource)]
struct Published {
    outcome: SummaryOutcome,
    done: bool,
}

/// Publishes the summary (or the error) once; the viewer keeps running.
fn publish(mut published: ResMut<Published>) {
    if published.done {
        return;
    }
    let outcome = outcome_ref(&published.outcome);
    let Some(result) = outcome.as_ref() else {
        return;
    };
    let json = result
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|s| serde_json::to_string(s).map_err(|e| e.to_string()))
        .and_then(|text| js_sys::JSON::parse(&text).map_err(|e| format!("{e:?}")));
    match json {
        Ok(value) => {
            // Setting a property of a fresh object cannot fail.
            let _ = js_sys::Reflect::set(&value, &"web_bundle".into(), &WEB_BUNDLE.name().into());
            if let Ok(loader) = js_sys::Reflect::get(&js_sys::global(), &LOADER_GLOBAL.into()) {
                let _ = js_sys::Reflect::set(&value, &"web_loader".into(), &loader);
            }
            set_global(SUMMARY_GLOBAL, &value)
        }
        Err(e) => fail(&format!("perf summary: {e}")),
    }
    drop(outcome);
    published.done = true;
}

fn fail(message: &str) {
    web_sys::console::error_1(&message.into());
    set_global(ERROR_GLOBAL, &message.into());
}

fn set_global(name: &str, value: &JsValue) {
    // Setting a property on the global object only fails on a frozen one.
    let _ = js_sys::Reflect::set(&js_sys::global(), &name.into(), value);
}
