"""Models of the product: data in, model out; model and input in, predictions out.

No Kafka, HTTP or SQL in here: workers feed these modules from the bus, the API serves
their output, and the `analyst` commands train and evaluate them."""
