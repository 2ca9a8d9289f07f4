// Negative Prompt Delay: keep the Delay slider's maximum equal to the tab's Sampling steps, and show the
// active delay in the panel title ("from step N of S").
(function () {
    "use strict";

    function numberInput(root) {
        return root ? root.querySelector("input[type=number]") : null;
    }

    function setup(tab) {
        const app = gradioApp();
        const steps = app.querySelector("#" + tab + "_steps");
        const delay = app.querySelector("#negative_delay_" + tab + "_delay");
        const summary = app.querySelector("#negative_delay_" + tab + "_summary");
        const enabled = app.querySelector("#negative_delay_" + tab + "-checkbox input[type=checkbox]");
        if (!steps || !delay) {
            return false;
        }
        const update = function () {
            const stepsValue = Math.max(1, parseInt(numberInput(steps).value, 10) || 1);
            delay.querySelectorAll("input").forEach(function (input) {
                input.max = stepsValue;
            });
            const delayValue = parseInt(numberInput(delay).value, 10) || 0;
            if (summary) {
                const on = !enabled || enabled.checked;
                summary.textContent = on && delayValue > 0
                    ? (delayValue >= stepsValue ? "never applied" : "from step " + delayValue + " of " + stepsValue)
                    : "";
                summary.title = "Steps with the empty negative prompt before yours takes over";
            }
        };
        [steps, delay].forEach(function (root) {
            root.querySelectorAll("input").forEach(function (input) {
                input.addEventListener("input", update);
                input.addEventListener("change", update);
            });
        });
        if (enabled) {
            enabled.addEventListener("change", update);
        }
        update();
        return true;
    }

    onUiLoaded(function () {
        ["txt2img", "img2img"].forEach(setup);
    });
})();
