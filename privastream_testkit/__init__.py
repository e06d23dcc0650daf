"""What PrivaStream's tests, evaluations, benchmarks and demo share: generated pictures, clips and
speech with exact ground truth, launchers for the real processes (inference server, OBS, SFU,
Chromium viewers, WHIP publisher), and the judges that read a recording back.

    scenes        stills and clips with the box of every face, word and plate on them
    speech        espeak-ng speech with the time of every word
    boxes         whether covers hide boxes
    processes     a child process awaited by its ready line; polling for a condition
    server        `python -m inference_server serve` in its own process
    obs           real OBS Studio under Xvfb, driven over obs-websocket
    sfu           network namespaces, the SFU, viewers, publishers and an RTP sink
    whip          a WHIP publisher on aiortc
    media         the OBS tests' flash-and-tone clip, and reading recordings back
    cover_judge   whether a recorded face kept its detail
    speech_judge  whether recorded speech was bleeped where the clip says
    vision_eval   how well the vision engine covers a clip's ground truth

Installed with the project (requirements.txt installs it editable, with the `test` extra it
needs) so that `python scripts/x.py` and `python -m pytest` import it alike.  It drives files
of the checkout (sfu/server.js, scripts/run_obs.sh, the OBS script), so it runs from a checkout,
not from a wheel.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The checkout this package runs from."""
