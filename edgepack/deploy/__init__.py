"""Deploy signed Lambda artifacts: verify, smoke-test, then create/update, publish, route.

One job per module, in the order a deploy runs them:

- ``artifact``: verify the zip (and its layer zip) offline and read what the deploy needs;
- ``checks``: validate every value edgepack will send, before any call (moto accepts
  almost anything, and so edgepack cannot rely on the service to refuse a bad request);
- ``smoke``: run the sample recorded at build through the exact zip via the local invoke;
- ``aws``: clients, credentials, error mapping and bounded retries with jitter;
- ``upload``: the code's way to Lambda, inline or through S3 above the direct limit;
- ``layer``: publish a layer version, or reuse the one with the same bytes;
- ``lambda_function``: create/update, wait, publish a version, move the alias (canary,
  promote, rollback), tag.

Nothing here is imported by ``edgepack`` at start: boto3 loads only when a deploy runs.
"""
