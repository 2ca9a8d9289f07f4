// Negative Prompt Delay: keep the Delay slider's maximum equal to the tab's Sampling steps, show in the panel's title
// whether the extension is on ("Negative Prompt Delay: from step N of S"), and give the controls hover tooltips.
(function () {
    "use strict";

    var TITLE = "Negative Prompt Delay";
    // Values set by gradio (paste, "Send to") change the inputs' properties without any DOM event or node mutation
    // (so neither input/change listeners nor onAfterUiUpdate see them): a cheap poll catches those.
    var POLL_MS = 500;

    var TIPS = {
        _enabled: "Off by default. While on, the panel's title shows the step the negative prompt starts at.",
        _delay:
            "Sampling steps that run with an empty negative prompt; yours applies from this step on. " +
            "0 gives the same image as off; at or above the step count it is never applied.",
        _auto:
            "Each image switches on its own, at the step where the prompt starts to draw what the negative prompt " +
            "names. Costs one extra model evaluation per undecided image and checked step. " +
            "Delay is the fallback if detection cannot run.",
        _sensitivity:
            "Higher switches earlier: 0 needs a cosine of 0.5 between the two directions, 0.5 needs -0.4, " +
            "1 switches at the earliest step.",
        _auto_min: "The first step the detector measures.",
        _auto_max: "Images still undecided switch at this step, without a measurement.",
    };
    var NOISE_LEVEL_TIP =
        " In img2img and the hires-fix pass the delay marks a noise level (the one txt2img reaches after that " +
        "many steps): a low denoising strength applies the negative prompt at once.";

    function numberInput(root) {
        return root ? root.querySelector("input[type=number]") : null;
    }

    function addTooltips(tab) {
        var app = gradioApp();
        Object.keys(TIPS).forEach(function (suffix) {
            var root = app.querySelector("#negative_delay_" + tab + suffix);
            if (root && !root.title) {
                root.title = TIPS[suffix] + (suffix === "_delay" ? NOISE_LEVEL_TIP : "");
            }
        });
    }

    function setup(tab) {
        var app = gradioApp();
        var last = null;
        var update = function () {
            // looked up each time: cheap, and survives gradio re-rendering the elements
            var steps = app.querySelector("#" + tab + "_steps");
            var panel = app.querySelector("#negative_delay_" + tab);
            var delay = app.querySelector("#negative_delay_" + tab + "_delay");
            var enabled = app.querySelector("#negative_delay_" + tab + "_enabled input[type=checkbox]");
            if (!numberInput(steps) || !panel || !numberInput(delay) || !enabled) {
                return;
            }
            var stepsValue = Math.max(1, parseInt(numberInput(steps).value, 10) || 1);
            var delayValue = parseInt(numberInput(delay).value, 10) || 0;
            var state = [stepsValue, delayValue, enabled.checked].join("/");
            if (state === last) {
                return;
            }
            last = state;
            delay.querySelectorAll("input").forEach(function (input) {
                input.max = stepsValue;
            });
            var text = TITLE;
            if (enabled.checked) {
                text += delayValue >= stepsValue ? ": on, never applied" : ": from step " + delayValue + " of " + stepsValue;
            }
            var title = panel.querySelector(".label-wrap span");
            if (title) {
                title.textContent = text;
            }
            panel.classList.toggle("negative-delay-active", enabled.checked);
        };
        ["#" + tab + "_steps", "#negative_delay_" + tab + "_delay", "#negative_delay_" + tab + "_enabled"].forEach(
            function (selector) {
                app.querySelectorAll(selector + " input").forEach(function (input) {
                    input.addEventListener("input", update);
                    input.addEventListener("change", update);
                });
            }
        );
        addTooltips(tab);
        update();
        return update;
    }

    onUiLoaded(function () {
        var updates = ["txt2img", "img2img"].map(setup);
        setInterval(function () {
            updates.forEach(function (update) {
                update();
            });
        }, POLL_MS);
    });
})();
