"""Train the window classifier and write inference/models/{classifier.onnx,.json,.golden.json}.

    .venv/bin/python train.py            # from inference/train, ~2 minutes on one core

Reproducible: fixed seed, simulated data (simulate.py), stratified train/held-out split.
Model: log1p -> StandardScaler -> MLP(32, 16, relu) -> softmax, exported as one ONNX graph
whose only input is `features` float32 [N, 21] (the Rust FeatureVector order) and only output
`probabilities` float32 [N, 7] (CLASSES order). skl2onnx exports the MLP; log1p and the fitted
scaler are prepended as plain ONNX nodes (Add, Log, Sub, Div) and the label branch is pruned,
so tract sees nothing but Add/Log/Sub/Div/MatMul/Relu/Softmax.
"""

import hashlib
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
import skl2onnx
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from features import CLASSES, FEATURE_NAMES, FEATURE_VERSION
from simulate import dataset

SEED = 20261126
N_PER_CLASS = 3000
OUT = pathlib.Path(__file__).resolve().parent.parent / "models"


def build_onnx(pipe):
    scaler, mlp = pipe.named_steps["scale"], pipe.named_steps["mlp"]
    onx = convert_sklearn(
        mlp,
        initial_types=[("scaled_features", FloatTensorType([None, len(FEATURE_NAMES)]))],
        options={id(mlp): {"zipmap": False}},
        target_opset={"": 13, "ai.onnx.ml": 1},
    )
    g = onx.graph
    g.name = "mini_xdr_window_classifier"  # skl2onnx picks a random name; fixed for byte-identical output
    # Keep only what `probabilities` needs (drop the ArgMax/label branch).
    prob = next(o for o in g.output if o.name == "probabilities")
    needed, keep = {"probabilities"}, []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del g.node[:]
    # In front of the MLP, as plain tensor ops (the ONNX-ML Scaler is not needed by tract):
    # features -> Add(1) -> Log -> Sub(mean) -> Div(scale) -> scaled_features.
    n = len(FEATURE_NAMES)
    g.initializer.extend([
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("scaler_mean", TensorProto.FLOAT, [n], scaler.mean_.astype(np.float32).tolist()),
        helper.make_tensor("scaler_scale", TensorProto.FLOAT, [n], scaler.scale_.astype(np.float32).tolist()),
    ])
    g.node.extend([
        helper.make_node("Add", ["features", "one"], ["features_plus_one"], name="log1p_add"),
        helper.make_node("Log", ["features_plus_one"], ["log_features"], name="log1p_log"),
        helper.make_node("Sub", ["log_features", "scaler_mean"], ["centered"], name="scaler_sub"),
        helper.make_node("Div", ["centered", "scaler_scale"], ["scaled_features"], name="scaler_div"),
    ])
    g.node.extend(reversed(keep))
    used = {i for n in g.node for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, len(FEATURE_NAMES)]))
    del g.output[:]
    g.output.append(prob)
    opsets = [o for o in onx.opset_import if o.domain in ("", "ai.onnx")]
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    onnx.checker.check_model(onx)
    return onx


def main():
    X, y = dataset(N_PER_CLASS, SEED)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    pipe = Pipeline([
        ("scale", StandardScaler()),
        ("mlp", MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=400, early_stopping=True,
                              random_state=SEED)),
    ])
    pipe.fit(np.log1p(X_train), y_train)
    pred = pipe.predict(np.log1p(X_test))
    report = classification_report(y_test, pred, target_names=CLASSES, output_dict=True, digits=4)
    print(classification_report(y_test, pred, target_names=CLASSES, digits=3))
    cm = confusion_matrix(y_test, pred)
    print(cm)

    onx = build_onnx(pipe)
    OUT.mkdir(parents=True, exist_ok=True)
    model_path = OUT / "classifier.onnx"
    model_path.write_bytes(onx.SerializeToString())
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    # Golden vectors: held-out windows of every class plus edge cases (all zeros, huge counts).
    rng = np.random.default_rng(SEED)
    idx = np.concatenate([rng.choice(np.flatnonzero(y_test == c), 4, replace=False) for c in range(len(CLASSES))])
    edge = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    edge[1, :] = 1e6
    golden_in = np.concatenate([X_test[idx], edge]).astype(np.float32)
    golden_out = sess.run(["probabilities"], {"features": golden_in})[0]
    skl_out = pipe.predict_proba(np.log1p(golden_in))
    assert np.abs(golden_out - skl_out).max() < 1e-4, "onnx export disagrees with scikit-learn"
    ort_test = sess.run(["probabilities"], {"features": X_test})[0]
    ort_acc = accuracy_score(y_test, ort_test.argmax(1))

    golden = {
        "model_file": "classifier.onnx",
        "runtime": f"onnxruntime {ort.__version__}",
        "tolerance": 1e-5,
        "inputs": [[float(v) for v in row] for row in golden_in],
        "labels": [CLASSES[int(c)] for c in y_test[idx]] + ["edge_zeros", "edge_huge"],
        "expected": [[float(v) for v in row] for row in golden_out],
    }
    (OUT / "classifier.golden.json").write_text(json.dumps(golden, indent=1) + "\n")

    meta = {
        "name": "window-classifier",
        "model_file": "classifier.onnx",
        "sha256": sha,
        "golden_file": "classifier.golden.json",
        "input_name": "features",
        "output_name": "probabilities",
        "feature_version": FEATURE_VERSION,
        "feature_names": FEATURE_NAMES,
        "classes": CLASSES,
        "preprocessing": "log1p, then StandardScaler (inside the graph)",
        "architecture": "MLP 21-32-16-7, relu, softmax",
        "training": {
            "seed": SEED,
            "simulated_per_class": N_PER_CLASS,
            "train": int(len(y_train)),
            "held_out": int(len(y_test)),
            "held_out_accuracy": round(float(report["accuracy"]), 4),
            "held_out_accuracy_onnxruntime": round(float(ort_acc), 4),
            "per_class": {
                c: {k: round(float(report[c][k]), 4) for k in ("precision", "recall", "f1-score", "support")}
                for c in CLASSES
            },
            "confusion_matrix": cm.tolist(),
            "versions": {
                "scikit-learn": sklearn.__version__,
                "skl2onnx": skl2onnx.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
                "numpy": np.__version__,
            },
        },
    }
    (OUT / "classifier.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes, sha256 {sha}); onnxruntime accuracy {ort_acc:.4f}")


if __name__ == "__main__":
    main()
