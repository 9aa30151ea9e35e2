"""Build the NIR model bundled with spikejit (``spikejit/examples/cuba_rsnn.nir``).

Run from the repository root::

    python examples/make_bundled_model.py

The model is small but uses the interesting parts of NIR: an ``Affine`` input layer, a
recurrent current-based LIF layer written as a *nested* ``NIRGraph`` (the way snnTorch
exports ``RSynaptic``: ``input -> lif <-> w_rec``, ``lif -> output``), a ``Linear`` readout
and a leaky-integrator (``LI``) output whose membrane is the network's output.

Weights come from a fixed seed, so running the script again writes the same graph. The
time constants are in seconds and were chosen for ``dt = 1e-3`` (``RECOMMENDED_DT`` in
``spikejit.examples``): ``h/tau_syn = 0.2``, ``h/tau_mem = 0.05``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nir
import numpy as np

SEED = 2024
N_IN, N_HIDDEN, N_OUT = 8, 16, 4
OUT = Path(__file__).resolve().parents[1] / "spikejit" / "examples" / "cuba_rsnn.nir"


def build() -> nir.NIRGraph:
    """The bundled model as a ``nir.NIRGraph`` (deterministic)."""
    rng = np.random.default_rng(SEED)
    f32 = np.float32
    w_in = rng.normal(0.6, 0.8, size=(N_HIDDEN, N_IN)).astype(f32)
    b_in = rng.normal(0.0, 0.1, size=N_HIDDEN).astype(f32)
    w_rec = rng.normal(0.0, 0.4, size=(N_HIDDEN, N_HIDDEN)).astype(f32)
    np.fill_diagonal(w_rec, 0.0)
    w_out = rng.normal(0.0, 0.5, size=(N_OUT, N_HIDDEN)).astype(f32)
    ones = np.ones(N_HIDDEN, dtype=f32)
    hidden = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([N_HIDDEN])),
            "lif": nir.CubaLIF(
                tau_syn=np.full(N_HIDDEN, 5e-3, dtype=f32),
                tau_mem=rng.uniform(15e-3, 25e-3, size=N_HIDDEN).astype(f32),
                r=2.0 * ones,
                v_leak=np.zeros(N_HIDDEN, dtype=f32),
                v_threshold=ones,
                v_reset=np.zeros(N_HIDDEN, dtype=f32),
                w_in=ones,
            ),
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type=np.array([N_HIDDEN])),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        metadata={"description": "recurrent CubaLIF layer"},
    )
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([N_IN])),
            "fc_in": nir.Affine(weight=w_in, bias=b_in),
            "hidden": hidden,
            "fc_out": nir.Linear(weight=w_out),
            "readout": nir.LI(
                tau=np.full(N_OUT, 1e-2, dtype=f32),
                r=np.ones(N_OUT, dtype=f32),
                v_leak=np.zeros(N_OUT, dtype=f32),
            ),
            "output": nir.Output(output_type=np.array([N_OUT])),
        },
        edges=[("input", "fc_in"), ("fc_in", "hidden"), ("hidden", "fc_out"),
               ("fc_out", "readout"), ("readout", "output")],
        metadata={"description": "spikejit bundled example: recurrent CubaLIF network",
                  "recommended_dt": 1e-3},
    )


def main(out: Path = OUT) -> None:
    """Write the model to ``out``."""
    nir.write(out, build())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
