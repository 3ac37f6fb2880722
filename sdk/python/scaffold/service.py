import logging
from berth import Service, notify, Severity

service = Service()
logger = logging.getLogger(__name__)
service.add_parameter("greeting_phrase", "Hello")

@service.entrypoint
def hello(name: str) -> str:
    greeting_phrase = service.get_parameter("greeting_phrase")
    if name == "World":
        notify(msg="Someone is trying to greet the World, too time consuming. Skipping!",
               severity=Severity.WARNING)
        return "Greeting failed"
    logger.info(f"Greeting someone with the name: {name}")
    return f"{greeting_phrase} {name}"

service.run()
