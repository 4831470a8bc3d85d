"""Machine-learned models of the product: plain modules, data in and predictions out.

No Kafka, HTTP or SQL in here: workers feed them, the API serves their output, and the
`analyst` CLI trains and evaluates them."""
