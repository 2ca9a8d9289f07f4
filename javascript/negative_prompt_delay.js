// Negative Prompt Delay: keep the Delay slider's maximum equal to the tab's Sampling steps, and show in the
// panel's title whether the extension is on ("Negative Prompt Delay: from step N of S").
(function () {
    "use strict";

    var TITLE = "Negative Prompt Delay";

    function numberInput(root) {
        return root ? root.querySelector("input[type=number]") : null;
    }

    function setup(tab) {
        var app = gradioApp();
        var steps = app.querySelector("#" + tab + "_steps");
        var panel = app.querySelector("#negative_delay_" + tab);
        var delay = app.querySelector("#negative_delay_" + tab + "_delay");
        var enabled = app.querySelector("#negative_delay_" + tab + "_enabled input[type=checkbox]");
        if (!steps || !panel || !delay || !enabled) {
            return;
        }
        var title = panel.querySelector(".label-wrap span");
        var update = function () {
            var stepsValue = Math.max(1, parseInt(numberInput(steps).value, 10) || 1);
            delay.querySelectorAll("input").forEach(function (input) {
                input.max = stepsValue;
            });
            var delayValue = parseInt(numberInput(delay).value, 10) || 0;
            var text = TITLE;
            if (enabled.checked) {
                text += delayValue >= stepsValue ? ": on, never applied" : ": from step " + delayValue + " of " + stepsValue;
            }
            if (title) {
                title.textContent = text;
            }
            panel.classList.toggle("negative-delay-active", enabled.checked);
        };
        [steps, delay].forEach(function (root) {
            root.querySelectorAll("input").forEach(function (input) {
                input.addEventListener("input", update);
                input.addEventListener("change", update);
            });
        });
        enabled.addEventListener("change", update);
        update();
    }

    onUiLoaded(function () {
        ["txt2img", "img2img"].forEach(setup);
    });
})();
