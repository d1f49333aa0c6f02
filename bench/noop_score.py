"""A scoring script that does nothing: the inference server's own ceiling, baseline (a) of ``make bench``.

``@rawhttp`` like the template, so it takes any body (JSON or .npy) without the server decoding it.
"""

from azureml_inference_server_http.api.aml_request import rawhttp


def init():
    pass


@rawhttp
def run(request):
    return {}
