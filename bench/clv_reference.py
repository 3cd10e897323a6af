"""Reference values for tests/graph/test_customer_value.py: PyMC-Marketing's MAP fits (flat priors, so maximum
likelihood) of MBG/NBD and Gamma-Gamma on the test's simulated customers. The library is not a dependency (790 MB,
a C compiler on first use); to regenerate the numbers pasted into the test, in a virtual environment of its own
(tests/clv_simulation.py needs numpy alone):

    python3 -m venv /tmp/pymc && /tmp/pymc/bin/pip install pymc-marketing==0.19.2 pymc-extras==0.10.0
    /tmp/pymc/bin/python bench/clv_reference.py
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pymc_extras.prior import Prior
from pymc_marketing import clv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.clv_simulation import REFERENCE_CUSTOMERS, simulate  # noqa: E402


def main() -> None:
    x, t_x, t, m = simulate(20_000, seed=11)
    data = pd.DataFrame({"customer_id": np.arange(len(x)), "frequency": x, "recency": t_x, "T": t})
    model = clv.ModifiedBetaGeoModel(data=data,
                                     model_config={k: Prior("HalfFlat") for k in ("r", "alpha", "a", "b")})
    model.fit(method="map", progressbar=False)
    print("MBGNBD =", [float(model.fit_result[k].values.squeeze()) for k in ("r", "alpha", "a", "b")])
    purchases = model.expected_purchases(future_t=365.0).mean(("chain", "draw")).values
    print("PURCHASES_365 =", [float(purchases[i]) for i in REFERENCE_CUSTOMERS])
    buyers = x > 0
    spend = pd.DataFrame({"customer_id": np.flatnonzero(buyers), "frequency": x[buyers], "monetary_value": m[buyers]})
    model = clv.GammaGammaModel(data=spend)
    model.fit(method="map", progressbar=False)
    print("GAMMA_GAMMA =", [float(model.fit_result[k].values.squeeze()) for k in ("p", "q", "v")])
    value = model.expected_customer_spend(data=spend).mean(("chain", "draw")).values
    print("SPEND_PER_PURCHASE =", [float(value[i]) for i in REFERENCE_CUSTOMERS])


if __name__ == "__main__":
    main()
