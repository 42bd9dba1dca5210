"""Small built-in lists of common names and streets; combined at random they name nobody.

Each name group has (female first names, male first names, last names). No real people's data
file is read: these are short lists of common given names and surnames.
"""

from __future__ import annotations

NameGroup = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


GROUPS: dict[str, NameGroup] = {
    "general": (
        _split(
            "Olivia Emma Ava Sophia Isabella Mia Amelia Harper Evelyn Abigail Emily Ella "
            "Avery Scarlett Grace Chloe Lily Aria Zoey Nora Hazel Riley Layla Stella Maya "
            "Hannah Ruby Aaliyah Brooklyn Claire Naomi Leah Piper Willow Quinn Madison"
        ),
        _split(
            "Liam Noah Oliver Elijah James William Benjamin Lucas Henry Theodore Jack Levi "
            "Alexander Jackson Mason Michael Ethan Daniel Jacob Logan Owen Samuel Wyatt Jayden "
            "Caleb Isaiah Jordan Carter Dylan Hunter Malik Xavier Miles Cameron Grayson Eli"
        ),
        _split(
            "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Thomas Taylor "
            "Moore Jackson Martin Lee Thompson White Harris Clark Lewis Robinson Walker Young "
            "Allen King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Carter "
            "Roberts Turner Phillips Parker Evans Edwards Collins Stewart Morris Murphy Cook "
            "Rogers Morgan Cooper Peterson Bailey Reed Kelly Howard Cox Ward Richardson Watson "
            "Brooks Wood Bennett Gray Hughes Price Sanders Myers Long Ross Foster Jenkins"
        ),
    ),
    "hispanic": (
        _split(
            "Sofia Valentina Camila Isabella Mariana Lucia Ximena Daniela Gabriela Valeria "
            "Ana Natalia Renata Paola Guadalupe Fernanda Andrea Jimena Elena Abril Luciana"
        ),
        _split(
            "Mateo Santiago Sebastian Diego Leonardo Emiliano Matias Nicolas Alejandro Angel "
            "Gael Jose Luis Carlos Miguel Juan Adrian Eduardo Javier Andres Rafael Julian"
        ),
        _split(
            "Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez Torres "
            "Flores Rivera Gomez Diaz Reyes Morales Cruz Ortiz Gutierrez Chavez Ramos Ruiz "
            "Alvarez Mendoza Vasquez Castillo Jimenez Moreno Romero Herrera Medina Aguilar "
            "Vargas Castro Guzman Fernandez Salazar Soto Delgado Pena Rios Contreras Sandoval"
        ),
    ),
    "aian": (
        _split("Ahiga Nizhoni Aiyana Kaya Shandiin Tala Winona Dezbah Halona Sahkyo Ayasha"),
        _split("Ahanu Dyami Hania Kele Nodin Takoda Tokala Chayton Elan Koda Mato Yuma"),
        _split(
            "Begay Yazzie Benally Tsosie Nez Tso Joe Chee Etsitty Harvey Jim Lee Lewis Sam "
            "Bowekaty Cachini Lasiloo Quam Tsethlikai Waseta Zunie Chavez Martinez Pino"
        ),
    ),
    "vietnamese": (
        _split("Linh Mai Anh Thao Ngoc Lan Hoa Trang Vy Hanh"),
        _split("Minh Duc Huy Khoa Nam Bao Long Tuan Quang Thanh"),
        _split("Nguyen Tran Le Pham Hoang Phan Vu Dang Bui Do Ngo Duong"),
    ),
    "nepali": (
        _split("Sita Gita Anita Sunita Maya Kabita Puja Sarita Laxmi Asha"),
        _split("Ram Hari Bikash Suraj Dipak Nabin Prakash Arjun Bishal Kiran"),
        _split("Gurung Rai Tamang Magar Limbu Subba Ghimire Adhikari Chhetri Bhattarai"),
    ),
    "east_african": (
        _split("Amina Fatuma Halima Asha Hodan Zahra Neema Imani Baraka Rehema"),
        _split("Abdi Ahmed Hassan Yusuf Omar Juma Baraka Daudi Salim Bakari"),
        _split("Mohamed Hassan Ali Abdi Warsame Farah Mwangi Otieno Juma Bakari Mohamud"),
    ),
    "arabic": (
        _split("Layla Mariam Noor Yasmin Salma Huda Rania Leen Aya Dana"),
        _split("Omar Ahmad Yousef Khalid Ibrahim Hamza Karim Zaid Samir Adam"),
        _split("Haddad Khalil Nasser Saleh Haddadin Mansour Darwish Aziz Hamdan Sabbagh"),
    ),
    "bosnian": (
        _split("Amra Lejla Emina Selma Ajla Merima Dzenana Lamija Naida Sara"),
        _split("Amar Emir Adnan Haris Kenan Tarik Mirza Edin Dino Armin"),
        _split("Hodzic Begic Hadzic Delic Kovacevic Mehic Suljic Omerovic Alic Salihovic"),
    ),
}
GROUP_NAMES: tuple[str, ...] = tuple(GROUPS)

LANGUAGE_GROUP = {
    "spa": "hispanic",
    "myn": "hispanic",
    "vie": "vietnamese",
    "nep": "nepali",
    "som": "east_african",
    "swa": "east_african",
    "ara": "arabic",
    "bos": "bosnian",
    "nav": "aian",
    "zun": "aian",
}
"""The name group of a child whose home language is not English."""

STREETS = _split(
    "Maple Oak Pine Cedar Elm Willow Birch Spruce Walnut Chestnut Hickory Aspen Juniper "
    "Main Church Mill Spring River Lake Hill Park Pleasant Prospect Union School Center "
    "Washington Lincoln Jefferson Franklin Jackson Madison Grant Monroe Adams Sunset Ridge "
    "Meadow Orchard Valley Highland Forest Garden Mesa Canyon Arroyo Vista Prairie Cherry"
)
STREET_SUFFIXES = _split("St St St Ave Ave Rd Dr Ln Ct Way Pl Blvd Cir")

STATEMENT_TEXT = {
    "race": "The parent states the recorded race does not reflect how the family identifies "
    "the child and asks that this statement accompany the field.",
    "disability": "The parent disputes the recorded disability status and has asked for a "
    "review; this statement must accompany the field.",
    "birth_date": "The parent states the recorded birth date was entered incorrectly and has "
    "asked for an amendment.",
    "home_language": "The parent states the family's home language was recorded incorrectly "
    "and asks to be called at 802-555-0100 or written to at parent@example.org to correct it.",
    "address_zip": "The parent states the recorded home address is out of date.",
}
"""Parent statements (45 CFR 1303.24(c)): template text, no names or values. One gives the
parent's own (fictional) phone and e-mail, as parents do: the statement must still travel."""

AREA_CODES = {"VT": "802", "MO": "816", "NM": "505"}
"""Phone numbers are ``AAA-555-01NN``: the 555-0100..0199 range is reserved for fiction."""
