"""Learned regressors fitted on the split's training architectures (scikit-learn).

Input encoding: ``features`` option, default ``hat`` (HAT's 10 normalised layer-mean features,
bench.features); standardised before fitting.  Seeds follow the split seed.
"""
from __future__ import annotations

import numpy as np

from bench.blas import one_blas_thread
from bench.features import ENCODINGS, encode

from .base import Predictor
from .registry import register


class _SklearnRegressor(Predictor):
    learns = True

    @classmethod
    def default_config(cls):
        return {"features": "hat"}

    @classmethod
    def config_choices(cls):
        return {"features": list(ENCODINGS)}

    def _model(self):
        raise NotImplementedError

    def _x(self, archs):
        return encode(archs, self.config["features"], self.ctx.task.space)

    def fit(self, archs, y):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), self._model())
        with one_blas_thread():  # tiny problems: BLAS threads only spin (3.6x slower on 2 busy cores)
            self.model.fit(self._x(archs), np.asarray(y, dtype=float))
        return self

    def predict(self, archs):
        if not len(archs):  # scikit-learn refuses an empty matrix
            return np.zeros(0)
        with one_blas_thread():
            return np.asarray(self.model.predict(self._x(archs)), dtype=float)


@register("linear", description="ridge regression on the architecture encoding", requires=("sklearn",),
          family="learned")
class Linear(_SklearnRegressor):
    @classmethod
    def default_config(cls):
        return {"features": "hat", "alpha": 1.0}

    def _model(self):
        from sklearn.linear_model import Ridge
        return Ridge(alpha=self.config["alpha"])


@register("gp", description="Gaussian process (Matern + white noise), the Bayesian-optimisation surrogate",
          requires=("sklearn",), family="learned")
class GP(_SklearnRegressor):
    def _model(self):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel(1.0) * Matern(length_scale=3.0, nu=2.5) + WhiteKernel(0.1)
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # bounds hit on 10 points are expected
        return GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=2,
                                        random_state=self.ctx.seed)


@register("rf", description="random forest (100 trees)", requires=("sklearn",), family="learned")
class RF(_SklearnRegressor):
    def _model(self):
        from sklearn.ensemble import RandomForestRegressor
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=self.ctx.seed)


@register("mlp", description="small MLP (1x32 ReLU, L-BFGS, 200 iterations)", requires=("sklearn",), family="learned")
class MLP(_SklearnRegressor):
    def _model(self):
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.neural_network import MLPRegressor
        from sklearn.preprocessing import StandardScaler

        net = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", alpha=1e-2, max_iter=200,
                           random_state=self.ctx.seed)
        return TransformedTargetRegressor(regressor=net, transformer=StandardScaler())
