"""The model: a line y = w*x + b fitted by gradient descent on mean squared error. Imported
by the driver and, through worker_code, by the Ray tasks on every node."""


def load(path):
    """(x, y) pairs from a CSV file of ``x,y`` lines."""
    with open(path, encoding="utf-8") as handle:
        return [tuple(float(field) for field in line.split(",")) for line in handle
                if line.strip()]


def gradient(points, w, b):
    """The summed gradient of the squared error over ``points`` at (w, b)."""
    grad_w = sum(2 * (w * x + b - y) * x for x, y in points)
    grad_b = sum(2 * (w * x + b - y) for x, y in points)
    return grad_w, grad_b


def loss(points, w, b):
    """Mean squared error of the line (w, b) over ``points``."""
    return sum((w * x + b - y) ** 2 for x, y in points) / len(points)
