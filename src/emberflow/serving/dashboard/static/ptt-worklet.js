// Push-to-talk capture: hands each block of microphone samples to the page, which resamples
// them to 16 kHz and posts them while the button is held.
class PttCapture extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && channel.length) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor('ptt-capture', PttCapture);
