"""Batches, the API's side: creating them (``service``), and looking after them until they end (``keeper``:
handing a batch nobody runs to the batch workers, writing the output and error files of one whose lines are
done)."""
