// Negative Prompt Delay: keep the Delay slider's maximum equal to the tab's Sampling steps (100 in % mode), show in the
// panel's title whether the extension is on ("Negative Prompt Delay: from step N of S", or "from 20 % — step 4 of 20"),
// convert the three step values when the user clicks the other unit, and give the controls hover tooltips.
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
        _unit:
            "steps: a number of sampling steps. %: a share of Sampling steps (20 % of 20 steps is step 4, of 30 " +
            "steps step 6; a fraction of a step rounds up), so the delay means the same moment at any step count.",
        _analysis:
            "After the images, one analysis sheet per image: what each step predicts, where the negative prompt " +
            "would change it, and the auto-detect signal with the switch step. One extra model evaluation per " +
            "image and step (about 1.5x the model work of plain CFG); the images stay exactly the same.",
    };
    var PERCENT = "%";
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

    function checkedUnit(tab) {
        var radio = gradioApp().querySelector("#negative_delay_" + tab + "_unit input[type=radio]:checked");
        return radio ? radio.value : "steps";
    }

    // negative_prompt_delay_logic.js: the rules, tested in Node (tests/js); bound when the UI is loaded, whatever
    // order the WebUI loads the two files in
    var logic = null;

    function setSlider(root, value) {
        var input = numberInput(root);
        if (input) {
            input.value = value;
            if (typeof updateInput === "function") {
                updateInput(input); // the WebUI's helper: gradio reads the value from this input event
            } else {
                input.dispatchEvent(new Event("input", { bubbles: true }));
            }
        }
    }

    // A user's click on the other unit keeps the moment: 4 steps of 20 become 20 %, 20 % become step 4. Pasted
    // values change the radio without a DOM event, so they are never converted.
    function convertOnClick(tab) {
        var app = gradioApp();
        app.querySelectorAll("#negative_delay_" + tab + "_unit input[type=radio]").forEach(function (radio) {
            radio.addEventListener("change", function () {
                var steps = numberInput(app.querySelector("#" + tab + "_steps"));
                var total = Math.max(1, parseInt(steps ? steps.value : "20", 10) || 1);
                ["_delay", "_auto_min", "_auto_max"].forEach(function (suffix) {
                    var root = app.querySelector("#negative_delay_" + tab + suffix);
                    var input = numberInput(root);
                    if (!input) {
                        return;
                    }
                    var value = parseFloat(input.value) || 0;
                    var converted =
                        radio.value === PERCENT ? logic.stepToPercent(value, total) : logic.percentToStep(value, total);
                    setSlider(root, converted);
                });
            });
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
            var delayValue = parseFloat(numberInput(delay).value) || 0;
            var unit = checkedUnit(tab);
            var state = [stepsValue, delayValue, enabled.checked, unit].join("/");
            if (state === last) {
                return;
            }
            last = state;
            var percent = unit === PERCENT;
            delay.querySelectorAll("input").forEach(function (input) {
                input.max = percent ? 100 : stepsValue;
            });
            var text = logic.title(TITLE, enabled.checked, delayValue, percent, stepsValue);
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
        convertOnClick(tab);
        addTooltips(tab);
        update();
        return update;
    }

    onUiLoaded(function () {
        logic = NegativePromptDelayLogic;
        var updates = ["txt2img", "img2img"].map(setup);
        setInterval(function () {
            updates.forEach(function (update) {
                update();
            });
        }, POLL_MS);
    });
})();
